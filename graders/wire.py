"""The wire format between the trusted grader and the untrusted sandbox.

Frames are a 4-byte big-endian length followed by a msgpack document. Values that
msgpack cannot carry travel as extension types whose payloads are plain data:
tensors as safetensors bytes, numpy arrays as npy bytes (``allow_pickle=False``),
tuples as a nested msgpack list. Nothing in this format can execute code when
decoded, so the grader can read whatever the sandbox sends without trusting it.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

import msgpack
import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

EXT_TENSOR = 1
EXT_TUPLE = 2
EXT_NDARRAY = 3
EXT_UNSUPPORTED = 4
EXT_HANDLE = 5

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME = 256 * 1024 * 1024


class WireError(Exception):
    """The peer sent something that is not a valid frame (too big, truncated, garbage)."""


@dataclass(frozen=True)
class Handle:
    """A reference to an object that lives in the sandbox (a model, a student's class)."""

    id: int


@dataclass(frozen=True)
class Unsupported:
    """A value the sandbox could not encode: only its type name and a short repr cross."""

    type_name: str
    text: str


def _tensor_to_bytes(tensor: torch.Tensor) -> bytes:
    plain = torch.Tensor._make_subclass(torch.Tensor, tensor.detach()) if type(
        tensor
    ) is not torch.Tensor else tensor.detach()
    if plain.is_sparse:
        plain = plain.to_dense()
    plain = plain.cpu().contiguous().clone()
    return st_save({"t": plain})


def _default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        try:
            return msgpack.ExtType(EXT_TENSOR, _tensor_to_bytes(obj))
        except Exception as exc:  # complex dtypes and other exotica safetensors refuses
            return _unsupported(obj, f"tensor that cannot be sent ({exc})")
    if isinstance(obj, tuple):
        return msgpack.ExtType(EXT_TUPLE, _pack(list(obj)))
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return _unsupported(obj, "numpy array of Python objects")
        buf = io.BytesIO()
        np.save(buf, obj, allow_pickle=False)
        return msgpack.ExtType(EXT_NDARRAY, buf.getvalue())
    if isinstance(obj, np.generic):
        return obj.item()
    # Subclasses of plain types (IntEnum, OrderedDict...) travel as their base type.
    for base in (bool, int, float, str, bytes):
        if isinstance(obj, base):
            return base(obj)
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, list):
        return list(obj)
    if isinstance(obj, Handle):
        return msgpack.ExtType(EXT_HANDLE, obj.id.to_bytes(8, "big"))
    if isinstance(obj, Unsupported):
        return msgpack.ExtType(EXT_UNSUPPORTED, _pack([obj.type_name, obj.text]))
    return _unsupported(obj, None)


def _unsupported(obj: Any, text: str | None) -> msgpack.ExtType:
    type_name = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if text is None:
        try:
            text = repr(obj)[:200]
        except Exception:
            text = "<repr failed>"
    return msgpack.ExtType(EXT_UNSUPPORTED, _pack([type_name, text]))


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_TENSOR:
        tensors = st_load(data)
        if set(tensors) != {"t"}:
            raise WireError("tensor payload does not hold exactly one tensor")
        return tensors["t"]
    if code == EXT_TUPLE:
        value = _unpack(data)
        if not isinstance(value, list):
            raise WireError("tuple payload is not a list")
        return tuple(value)
    if code == EXT_NDARRAY:
        return np.load(io.BytesIO(data), allow_pickle=False)
    if code == EXT_HANDLE:
        return Handle(int.from_bytes(data, "big"))
    if code == EXT_UNSUPPORTED:
        type_name, text = _unpack(data)
        return Unsupported(str(type_name), str(text))
    raise WireError(f"unknown extension type {code}")


def _pack(value: Any) -> bytes:
    # int keys would be lost by strict_map_key on the other side: keep maps str-keyed.
    return msgpack.packb(value, default=_default, use_bin_type=True, strict_types=True)


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(
        data, ext_hook=_ext_hook, raw=False, strict_map_key=True
    )


def encode(value: Any) -> bytes:
    """Encode one value (or message) to bytes, without the frame header."""
    return _pack(value)


def decode(data: bytes) -> Any:
    try:
        return _unpack(data)
    except WireError:
        raise
    except Exception as exc:
        raise WireError(f"undecodable message: {type(exc).__name__}: {exc}") from exc


def write_frame(stream: BinaryIO, message: Any) -> None:
    payload = encode(message)
    stream.write(HEADER.pack(len(payload)) + payload)
    stream.flush()


def read_exact(stream: BinaryIO, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise EOFError("peer closed the pipe")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO, max_size: int = DEFAULT_MAX_FRAME) -> Any:
    (size,) = HEADER.unpack(read_exact(stream, HEADER.size))
    if size > max_size:
        raise WireError(f"frame of {size} bytes is over the limit of {max_size}")
    return decode(read_exact(stream, size))
