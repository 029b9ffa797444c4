"""Values as bytes that cannot execute code when read: msgpack plus plain-data extensions.

Tensors travel as [dtype name, shape, raw bytes] (an allowlist of dtypes; the bytes must
be exactly what the shape and dtype need), numpy arrays as npy bytes
(``allow_pickle=False``, numeric dtypes only), tuples as a nested msgpack list; objects
that stay in the sandbox as handles; values the sandbox could not encode as their type
name and a short repr. `decode` runs the bounded scan first, so a hostile document is refused
before any object of it exists.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
import torch

from protocol import text
from protocol.limits import DecodeLimits
from protocol.scan import ScanError, check

EXT_TENSOR = 1
EXT_TUPLE = 2
EXT_NDARRAY = 3
EXT_UNSUPPORTED = 4
EXT_HANDLE = 5
#: A tensor that was still attached to an autograd graph in the sandbox.
EXT_ATTACHED_TENSOR = 6

#: Set on a decoded tensor that was attached to an autograd graph in the sandbox
#: (requires_grad or a grad_fn): the contract can say a result must be detached.
ATTACHED_ATTRIBUTE = "_autograder_attached"
NUMERIC_KINDS = frozenset("biufc")
#: The tensor dtypes that cross, by wire name (what safetensors carried before: the same
#: set). Others (complex, quantized) cross as Unsupported, with their type named.
TENSOR_DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_WIRE_NAMES = {dtype: name for name, dtype in TENSOR_DTYPES.items()}
MAX_TENSOR_DIMS = 64
UNSUPPORTED_TEXT = 200
TYPE_NAME_CHARS = 200


class DecodeError(ValueError):
    """The bytes are not a valid document of this format, or break a decoding limit."""


@dataclass(frozen=True)
class Handle:
    """A reference to an object that lives in the sandbox (a model, a student's class)."""

    id: int


@dataclass(frozen=True)
class Unsupported:
    """A value the sandbox could not encode: only its type name and a short repr cross."""

    type_name: str
    text: str


def is_attached(value: Any) -> bool:
    """Whether a decoded tensor was attached to an autograd graph where it was made."""
    return bool(getattr(value, ATTACHED_ATTRIBUTE, False))


# -- encoding (both sides) ----------------------------------------------------------------
def _tensor_to_bytes(tensor: torch.Tensor) -> bytes:
    """[dtype, shape, raw bytes]: a plain copy, without safetensors' header and checks
    (safetensors cost ~25 us per tensor on each side; a test call sends several)."""
    plain = tensor.detach()
    if type(plain) is not torch.Tensor:
        plain = torch.Tensor._make_subclass(torch.Tensor, plain)
    if plain.is_sparse:
        plain = plain.to_dense()
    name = _WIRE_NAMES.get(plain.dtype)
    if name is None:
        raise TypeError(f"a tensor of dtype {plain.dtype} cannot be sent")
    flat = plain.cpu().contiguous().reshape(-1)
    raw = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    return _pack([name, list(plain.shape), raw])


def _tensor_from_bytes(value: Any) -> torch.Tensor:
    if not (isinstance(value, list) and len(value) == 3):
        raise DecodeError("a tensor payload is not [dtype, shape, bytes]")
    name, shape, raw = value
    dtype = TENSOR_DTYPES.get(name) if isinstance(name, str) else None
    if dtype is None:
        raise DecodeError(f"a tensor of dtype {text.clean(name, 40)!r} is not accepted")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_TENSOR_DIMS
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise DecodeError("a tensor's shape is not a short list of sizes")
    if not isinstance(raw, bytes):
        raise DecodeError("a tensor's data is not bytes")
    itemsize = torch.empty((), dtype=dtype).element_size()
    if math.prod(shape) * itemsize != len(raw):
        raise DecodeError(
            f"a tensor of shape {shape} and dtype {name} does not hold {len(raw)} bytes"
        )
    if not raw:
        return torch.empty(shape, dtype=dtype)
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    if dtype is torch.bool:
        return (data != 0).reshape(shape)  # any byte but 0 is True, as a bool is stored
    return data.view(dtype).reshape(shape)


def _default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        try:
            attached = bool(obj.requires_grad or obj.grad_fn is not None)
            code = EXT_ATTACHED_TENSOR if attached else EXT_TENSOR
            return msgpack.ExtType(code, _tensor_to_bytes(obj))
        except Exception as exc:  # complex dtypes and other exotica
            return _unsupported(obj, f"tensor that cannot be sent ({exc})")
    if isinstance(obj, tuple):
        return msgpack.ExtType(EXT_TUPLE, _pack(list(obj)))
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in NUMERIC_KINDS:
            return _unsupported(obj, f"numpy array of dtype {obj.dtype}")
        buf = io.BytesIO()
        np.save(buf, obj, allow_pickle=False)
        return msgpack.ExtType(EXT_NDARRAY, buf.getvalue())
    if isinstance(obj, np.generic):
        return obj.item()
    # Subclasses of plain types (IntEnum, OrderedDict...) travel as their base type.
    for base in (bool, int, float, str):
        if isinstance(obj, base):
            return base(obj)
    if isinstance(obj, bytes):
        return bytes(obj)
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, list):
        return list(obj)
    if isinstance(obj, Handle):
        return msgpack.ExtType(EXT_HANDLE, obj.id.to_bytes(8, "big"))
    if isinstance(obj, Unsupported):
        return msgpack.ExtType(EXT_UNSUPPORTED, _pack([obj.type_name, obj.text]))
    return _unsupported(obj, None)


def _unsupported(obj: Any, description: str | None) -> msgpack.ExtType:
    type_name = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if description is None:
        try:
            description = repr(obj)[:UNSUPPORTED_TEXT]
        except Exception:
            description = "<repr failed>"
    return msgpack.ExtType(
        EXT_UNSUPPORTED, _pack([type_name[:TYPE_NAME_CHARS], description[:UNSUPPORTED_TEXT]])
    )


def _pack(value: Any) -> bytes:
    # int keys would be lost by strict_map_key on the other side: keep maps str-keyed.
    packed: bytes = msgpack.packb(value, default=_default, use_bin_type=True, strict_types=True)
    return packed


def encode(value: Any) -> bytes:
    """Encode one value (or message) to bytes, without the frame header."""
    return _pack(value)


# -- decoding (the grader reads what the sandbox sent) -------------------------------------
class _Decoder:
    def __init__(self, limits: DecodeLimits) -> None:
        self.limits = limits

    def unpack(self, data: bytes) -> Any:
        limits = self.limits
        return msgpack.unpackb(
            data,
            ext_hook=self.ext_hook,
            raw=False,
            strict_map_key=True,
            max_str_len=limits.max_str_len,
            max_bin_len=limits.max_frame_bytes,
            max_array_len=limits.max_container_len,
            max_map_len=limits.max_container_len,
            max_ext_len=limits.max_frame_bytes,
        )

    def ext_hook(self, code: int, data: bytes) -> Any:
        if code in (EXT_TENSOR, EXT_ATTACHED_TENSOR):
            tensor = _tensor_from_bytes(self.unpack(data))
            if code == EXT_ATTACHED_TENSOR:
                setattr(tensor, ATTACHED_ATTRIBUTE, True)
            return tensor
        if code == EXT_TUPLE:
            value = self.unpack(data)
            if not isinstance(value, list):
                raise DecodeError("a tuple payload is not a list")
            return tuple(value)
        if code == EXT_NDARRAY:
            array = np.load(io.BytesIO(data), allow_pickle=False)
            if array.dtype.kind not in NUMERIC_KINDS or array.dtype.itemsize == 0:
                raise DecodeError(f"a numpy array of dtype {array.dtype} is not accepted")
            return array
        if code == EXT_HANDLE:
            if len(data) != 8:
                raise DecodeError("a handle payload is not 8 bytes")
            return Handle(int.from_bytes(data, "big"))
        if code == EXT_UNSUPPORTED:
            value = self.unpack(data)
            if not isinstance(value, list) or len(value) != 2:
                raise DecodeError("an unsupported-value payload is not [type, text]")
            return Unsupported(
                text.clean(value[0], TYPE_NAME_CHARS), text.clean(value[1], UNSUPPORTED_TEXT)
            )
        raise DecodeError(f"unknown extension type {code}")


def decode(data: bytes, limits: DecodeLimits) -> Any:
    """Decode one document, refusing it (DecodeError) if it breaks a rule of `limits`."""
    if len(data) > limits.max_frame_bytes:
        raise DecodeError(
            f"a frame of {len(data)} bytes is over the limit of {limits.max_frame_bytes}"
        )
    try:
        check(data, limits)
        return _Decoder(limits).unpack(data)
    except (DecodeError, ScanError) as exc:
        raise DecodeError(str(exc)) from exc
    except Exception as exc:  # msgpack, torch and numpy each raise their own
        raise DecodeError(
            f"undecodable message: {type(exc).__name__}: {text.clean(exc, 200)}"
        ) from exc
