"""Model files at intake: their structure checked without loading a tensor or running
anything (safetensors header against the file's length, TorchScript archive listing,
ONNX's first byte); loading them happens only inside the sandbox."""

from __future__ import annotations

import io
import struct
import zipfile
from typing import Any

from graders.intake_limits import API_LIMITS, IntakeError, IntakeLimit, Limits, load_json, size_text

#: Bits per element of each safetensors dtype.
_DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


def _bad_safetensors(reason: str) -> IntakeError:
    return IntakeError(f"The file is not a valid safetensors file: {reason}.")


def check_safetensors(data: bytes, limits: Limits = API_LIMITS) -> dict[str, Any]:
    """The safetensors header, checked the way the safetensors library checks it (sizes,
    offsets covering the data exactly), without reading a tensor. Returns the entries."""
    if len(data) < 8:
        raise _bad_safetensors("it is shorter than its 8-byte header length")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > limits.max_tensor_header_bytes:
        raise IntakeLimit(
            "max_tensor_header_bytes",
            f"The safetensors header is {size_text(header_len)}: the limit is "
            f"{size_text(limits.max_tensor_header_bytes)} (at most "
            f"{limits.max_tensors:,} tensors).",
        )
    if header_len == 0 or 8 + header_len > len(data):
        raise _bad_safetensors(f"its header length ({header_len} bytes) does not fit the file")
    try:
        text = data[8 : 8 + header_len].decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_safetensors("its header is not UTF-8 text") from None
    if not text.startswith("{"):
        raise _bad_safetensors("its header is not a JSON object")
    header = load_json(text, "safetensors header", limits)
    if not isinstance(header, dict):
        raise _bad_safetensors("its header is not a JSON object")
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    metadata = header.get("__metadata__")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise _bad_safetensors("its __metadata__ is not a map of strings")
    if len(entries) > limits.max_tensors:
        raise IntakeLimit(
            "max_tensors",
            f"The safetensors file holds {len(entries):,} "
            f"tensors: the limit is {limits.max_tensors:,}.",
        )
    if not entries:
        raise IntakeError("The safetensors file holds no tensors.")
    spans = []
    for name, info in entries.items():
        spans.append((*_tensor_span(name, info, limits), name))
    spans.sort()
    position = 0
    for begin, end, name in spans:
        if begin != position:
            raise _bad_safetensors(
                f"the data of tensor {name!r} does not start where the previous one ends"
            )
        position = end
    if position != len(data) - 8 - header_len:
        raise _bad_safetensors(
            f"the tensors cover {position} bytes of data but the file has "
            f"{len(data) - 8 - header_len}"
        )
    return entries


def _tensor_span(name: str, info: Any, limits: Limits) -> tuple[int, int]:
    if not isinstance(info, dict):
        raise _bad_safetensors(f"the entry of tensor {name!r} is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in _DTYPE_BITS:
        raise _bad_safetensors(f"tensor {name!r} has an unknown dtype {dtype!r}")
    if (
        not isinstance(shape, list)
        or len(shape) > limits.max_tensor_dims
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise _bad_safetensors(
            f"tensor {name!r} has an invalid shape (at most "
            f"{limits.max_tensor_dims} non-negative sizes)"
        )
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
        and offsets[0] <= offsets[1]
    ):
        raise _bad_safetensors(f"tensor {name!r} has invalid data offsets")
    elements = 1
    for d in shape:
        elements *= d
    bits = elements * _DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != offsets[1] - offsets[0]:
        raise _bad_safetensors(
            f"tensor {name!r} of shape {shape} and dtype {dtype} does not "
            "match the size of its data"
        )
    return offsets[0], offsets[1]


def check_torchscript(data: bytes, limits: Limits = API_LIMITS) -> None:
    """A .pt file must be a TorchScript archive (it holds code/); a torch.save pickle
    (only data.pkl) is refused: the grader never loads a pickle."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise IntakeError(
            "The .pt file is not a TorchScript archive (it is not a zip file). Save the model "
            "with torch.jit.script(model).save('model.pt'), or save its weights with "
            "safetensors.torch.save_file(model.state_dict(), 'model.safetensors')."
        ) from exc
    if len(names) > limits.max_archive_entries:
        raise IntakeLimit(
            "max_archive_entries",
            f"The .pt archive holds {len(names):,} "
            f"files: the limit is "
            f"{limits.max_archive_entries:,}.",
        )
    if any("/code/" in n or n.endswith("constants.pkl") for n in names):
        return
    raise IntakeError(
        "The .pt file is a pickle made by torch.save, which the grader does not load: pickles "
        "can run code. Save the weights with safetensors instead: "
        "from safetensors.torch import save_file; save_file(model.state_dict(), "
        "'model.safetensors'). A TorchScript file (torch.jit.script(model).save('model.pt')) "
        "is accepted too."
    )


def check_onnx(data: bytes) -> None:
    # An ONNX file is a protobuf ModelProto; a cheap sanity check without parsing it here.
    if len(data) < 16 or data[:1] not in (b"\x08", b"\x12", b"\x1a", b"\x22", b"\x3a"):
        raise IntakeError("The .onnx file does not look like an ONNX model.")
