"""Submission intake: what kind of file this is, and the code cells it holds.

One module for the API (which refuses a bad file with a 422 or 413 before anything is
stored) and the trusted grader (which reads the cells of what the API accepted): both
call the same functions with the same limits, so a file the API took is never one the
worker cannot read. It only parses: no student code is executed here, no tensor is
materialised, and every step is bounded:

- bytes: ``Limits.max_bytes`` (the API also counts them while receiving);
- JSON nesting depth, checked on the parsed value without recursion (a RecursionError
  of the parser is a refusal, never an escape);
- number of cells and total size of the code;
- safetensors: the header is read on its own (size, tensor count, offsets and dtypes
  checked against the file's length) without loading a tensor;
- a time budget for the whole reading; the worker's budget is larger than the API's
  (``WORKER_LIMITS``), so that a file read in time by the API is read by the worker too,
  on a machine a few times slower.

Every refusal is an ``IntakeError`` (a sentence for the student); ``IntakeLimit`` and
``IntakeTooLarge`` (bytes) also name the limit that was passed.
"""

from __future__ import annotations

import io
import json
import re
import struct
import time
import unicodedata
import zipfile
from dataclasses import dataclass, replace
from typing import Any

NOTEBOOK = "notebook"
PYTHON = "python"
SAFETENSORS = "safetensors"
TORCHSCRIPT = "torchscript"
ONNX = "onnx"

CODE_KINDS = frozenset({NOTEBOOK, PYTHON})
MODEL_KINDS = frozenset({SAFETENSORS, TORCHSCRIPT, ONNX})
#: The exercise kinds each group of files grades: code answers the function and class
#: exercises, a model file the model exercises.
CODE_EXERCISES = frozenset({"function", "class"})
MODEL_EXERCISES = frozenset({"model"})
SUFFIXES = (".ipynb", ".py", ".safetensors", ".pt", ".onnx")


def exercise_kinds_for(file_kind: str) -> frozenset[str]:
    """The kinds of exercise that a submitted file of `file_kind` grades."""
    return MODEL_EXERCISES if file_kind in MODEL_KINDS else CODE_EXERCISES


def file_kinds_for(exercise_kind: str) -> frozenset[str]:
    """The kinds of file whose submissions grade an exercise of `exercise_kind`."""
    return MODEL_KINDS if exercise_kind in MODEL_EXERCISES else CODE_KINDS


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 20 * 1024 * 1024
    #: JSON nesting (a notebook is about 6 deep; widget metadata a few more).
    max_depth: int = 64
    #: Cells of a notebook (all types) or `# %%` cells of a .py file.
    max_cells: int = 2000
    #: Characters of code, all cells together.
    max_source_chars: int = 2_000_000
    max_tensors: int = 10_000
    max_tensor_header_bytes: int = 2 * 1024 * 1024
    max_tensor_dims: int = 16
    max_archive_entries: int = 10_000
    #: Wall-clock seconds for reading one file.
    seconds: float = 5.0


API_LIMITS = Limits()
#: The grader reads what the API accepted: the same limits of content, four times the
#: time; the byte limit (the service's setting) was applied by the API when receiving.
WORKER_LIMITS = replace(API_LIMITS, seconds=API_LIMITS.seconds * 4, max_bytes=2**40)


class IntakeError(ValueError):
    """The file cannot be graded; the message is a sentence for the student."""

    def __init__(self, message: str) -> None:
        message = message.strip()
        super().__init__(message if message.endswith((".", "?", "!")) else message + ".")


class IntakeLimit(IntakeError):
    """A limit of the file's content was passed; `limit` names it."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class IntakeTooLarge(IntakeLimit):
    """The file has more bytes than the limit."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__("max_bytes", f"The file is too large: the limit is "
                                      f"{_size(limit_bytes)}.")
        self.limit_bytes = limit_bytes


def _size(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MB"
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    return f"{n // 1024} KB" if n >= 1024 else f"{n} bytes"


class Budget:
    """The time budget of one reading: check() refuses once it is spent."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise IntakeLimit("seconds", f"Reading the file took longer than the "
                                         f"{self.seconds:g} s the grader allows; it is too "
                                         "complex (send fewer or smaller cells).")


@dataclass(frozen=True)
class CodeCell:
    """A code cell of a submission, as the sandbox runs it: its place in the notebook
    (1-based, markdown cells counted) or in the .py file, and its Python source."""

    index: int
    source: str


# -- file names ---------------------------------------------------------------------

MAX_FILENAME = 255
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def clean_filename(filename: str | None) -> str:
    """The name to keep for an upload: the last path part, without NUL, control or
    invisible formatting characters, at most 255 characters (the suffix kept)."""
    name = unicodedata.normalize("NFC", filename or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _UNSAFE_CATEGORIES)
    name = " ".join(name.split())
    if not name.strip("."):
        raise IntakeError("The uploaded file has no usable name; name it e.g. homework.ipynb.")
    if len(name) > MAX_FILENAME:
        stem, dot, suffix = name.rpartition(".")
        if dot and 0 < len(suffix) <= 16:
            name = stem[: MAX_FILENAME - len(suffix) - 1] + "." + suffix
        else:
            name = name[:MAX_FILENAME]
    return name


# -- what kind of file ----------------------------------------------------------------

def detect_kind(filename: str, data: bytes, limits: Limits = API_LIMITS) -> str:
    """Decide what the upload is from its name and its bytes; refuse the rest.

    A code file is read completely (as the grader will read it); a model file's
    structure is checked without loading it."""
    name = filename.lower()
    if not data:
        raise IntakeError("The file is empty.")
    if len(data) > limits.max_bytes:
        raise IntakeTooLarge(limits.max_bytes)
    budget = Budget(limits.seconds)
    if name.endswith(".ipynb"):
        read_notebook(data, limits, budget)
        return NOTEBOOK
    if name.endswith(".py"):
        read_python(data, limits, budget)
        return PYTHON
    if name.endswith(".safetensors"):
        check_safetensors(data, limits)
        return SAFETENSORS
    if name.endswith((".pt", ".pth", ".ts", ".jit")):
        return _torch_zip_kind(data, limits)
    if name.endswith(".onnx"):
        _check_onnx(data)
        return ONNX
    raise IntakeError(
        f"Unsupported file type for {filename!r}: upload a Jupyter notebook (.ipynb), a Python "
        "file (.py), or a model file (.safetensors, TorchScript .pt, .onnx)."
    )


def read_cells(kind: str, data: bytes, limits: Limits = WORKER_LIMITS) -> list[CodeCell]:
    """The code cells of a notebook or .py file (the grader's reading)."""
    if kind == NOTEBOOK:
        return read_notebook(data, limits)
    if kind == PYTHON:
        return read_python(data, limits)
    raise IntakeError(f"A {kind} file has no code cells.")


def _decode_text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IntakeError(f"The {what} is not valid UTF-8 text (byte {exc.start}).") from exc


# -- JSON -----------------------------------------------------------------------------

def _depth_refusal(what: str, limits: Limits) -> IntakeLimit:
    return IntakeLimit("max_depth", f"The {what} is nested too deeply: the limit is "
                                    f"{limits.max_depth} levels of lists and objects.")


def load_json(text: str, what: str, limits: Limits, check_depth: bool = True) -> Any:
    """json.loads with the depth limit; never lets a RecursionError out."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise _depth_refusal(what, limits) from None
    except json.JSONDecodeError as exc:
        raise IntakeError(
            f"The file is not a Jupyter notebook: it is not valid JSON ({exc.msg} at line "
            f"{exc.lineno}, column {exc.colno}). Was it saved completely?"
            if what == "notebook" else f"The {what} is not valid JSON ({exc.msg})."
        ) from exc
    except (ValueError, MemoryError) as exc:
        raise IntakeError(f"The {what} is not valid JSON ({exc}).") from exc
    if check_depth:
        _check_depth(value, what, limits)
    return value


def _check_depth(value: Any, what: str, limits: Limits) -> None:
    """Iterative: the depth of nested lists and objects, refused past the limit."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.max_depth:
            raise _depth_refusal(what, limits)
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list) and child:
                stack.append((child, depth + 1))
            elif isinstance(child, dict | list) and depth + 1 > limits.max_depth:
                raise _depth_refusal(what, limits)


# -- notebooks and .py files -----------------------------------------------------------

def read_notebook(data: bytes, limits: Limits = API_LIMITS,
                  budget: Budget | None = None) -> list[CodeCell]:
    """The notebook's code cells, in order, with notebook syntax made plain Python."""
    budget = budget or Budget(limits.seconds)
    if not data.strip():
        raise IntakeError("The file is empty.")
    if len(data) > limits.max_bytes:
        raise IntakeTooLarge(limits.max_bytes)
    text = _decode_text(data, "notebook")
    raw = load_json(text, "notebook", limits, check_depth=False)
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise IntakeError("The file is JSON but not a Jupyter notebook: it has no list of 'cells'.")
    if len(raw["cells"]) > limits.max_cells:
        raise IntakeLimit("max_cells", f"The notebook has {len(raw['cells'])} cells: the limit "
                                       f"is {limits.max_cells}.")
    _check_depth(raw, "notebook", limits)
    budget.check()
    version = raw.get("nbformat", 4)
    if not isinstance(version, int) or isinstance(version, bool) or version != 4:
        raise IntakeError(f"The notebook has format version {version!r}; the grader reads "
                          "version 4 notebooks (save it again with Jupyter 4 or later).")
    cells_in = raw["cells"]
    sources: list[tuple[int, str]] = []
    total = 0
    for index, cell in enumerate(cells_in, start=1):
        if not isinstance(cell, dict):
            raise IntakeError(f"Cell {index} of the notebook is not a cell (not a JSON object).")
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise IntakeError(f"Cell {index} of the notebook has a source that is neither "
                              "text nor a list of lines.")
        total += len(source)
        if total > limits.max_source_chars:
            raise _source_refusal(limits)
        sources.append((index, source))
    budget.check()
    return _plain_cells(sources, budget)


def _source_refusal(limits: Limits) -> IntakeLimit:
    return IntakeLimit("max_source_chars", f"The code is too long: the limit is "
                                           f"{limits.max_source_chars:,} characters in all "
                                           "cells together.")


def _plain_cells(sources: list[tuple[int, str]], budget: Budget) -> list[CodeCell]:
    cells = []
    for index, source in sources:
        cells.append(CodeCell(index=index, source=plain_python(source)))
        budget.check()
    return cells


_PERCENT_CELL = re.compile(r"^# ?(%%|In\[)", re.MULTILINE)


def read_python(data: bytes, limits: Limits = API_LIMITS,
                budget: Budget | None = None) -> list[CodeCell]:
    """A .py file; `# %%` markers (jupytext, VS Code) split it into cells."""
    budget = budget or Budget(limits.seconds)
    if len(data) > limits.max_bytes:
        raise IntakeTooLarge(limits.max_bytes)
    text = _decode_text(data, "Python file")
    if len(text) > limits.max_source_chars:
        raise _source_refusal(limits)
    starts = [m.start() for m in _PERCENT_CELL.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    if len(starts) > limits.max_cells:
        raise IntakeLimit("max_cells", f"The file has {len(starts)} cells (# %% markers): "
                                       f"the limit is {limits.max_cells}.")
    bounds = [*starts, len(text)]
    sources = [(i, text[a:b]) for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False),
                                                          start=1) if text[a:b].strip()]
    return _plain_cells(sources, budget)


# Cell magics whose body is still Python that Jupyter would run.
_RUN_BODY_MAGICS = {"time", "timeit", "capture", "prun", "debug"}
_LINE_MAGIC = re.compile(r"^(\s*)(%|!)(.*)$")
_ASSIGN_MAGIC = re.compile(r"^(\s*)([\w.\[\], ]+?)\s*=\s*(%|!)(.*)$")
_RUN_LINE_MAGICS = ("%time ", "%timeit ", "%prun ")


def plain_python(source: str) -> str:
    """Turn IPython syntax (magics, `!` shell lines) into Python that does nothing harmful.

    A cell that already compiles is left exactly as written. Shell escapes never run:
    they become `pass` (or an empty list where their output is assigned). A cell too
    deep for the compiler is left to the sandbox, which reports it as the cell's error.
    """
    try:
        compile(source, "<cell>", "exec", dont_inherit=True)
        return source
    except (SyntaxError, ValueError):
        pass
    except (RecursionError, MemoryError):
        return source
    lines = source.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        magic = lines[first].strip()[2:].split()[0] if lines[first].strip()[2:] else ""
        if magic in _RUN_BODY_MAGICS:
            lines = lines[first + 1 :]
        else:
            return "# cell magic %%" + magic + " skipped by the grader\n"
    out = []
    for line in lines:
        stripped = line.lstrip()
        assigned = _ASSIGN_MAGIC.match(line)
        if assigned and not stripped.startswith(("%", "!")):
            indent, target, sigil, _ = assigned.groups()
            out.append(f"{indent}{target} = {'[]' if sigil == '!' else 'None'}")
            continue
        match = _LINE_MAGIC.match(line)
        if match:
            indent = match.group(1)
            body = stripped
            run_prefix = next((p for p in _RUN_LINE_MAGICS if body.startswith(p)), None)
            if run_prefix:
                out.append(indent + body[len(run_prefix) :])
            else:
                out.append(indent + "pass  # IPython magic or shell line skipped by the grader")
            continue
        out.append(line)
    return "\n".join(out) + "\n"


# -- model files ----------------------------------------------------------------------

#: Bits per element of each safetensors dtype.
_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
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
        raise IntakeLimit("max_tensor_header_bytes",
                          f"The safetensors header is {_size(header_len)}: the limit is "
                          f"{_size(limits.max_tensor_header_bytes)} (at most "
                          f"{limits.max_tensors:,} tensors).")
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
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(v, str) for v in metadata.values())):
        raise _bad_safetensors("its __metadata__ is not a map of strings")
    if len(entries) > limits.max_tensors:
        raise IntakeLimit("max_tensors", f"The safetensors file holds {len(entries):,} "
                                         f"tensors: the limit is {limits.max_tensors:,}.")
    if not entries:
        raise IntakeError("The safetensors file holds no tensors.")
    spans = []
    for name, info in entries.items():
        spans.append((*_tensor_span(name, info, limits), name))
    spans.sort()
    position = 0
    for begin, end, name in spans:
        if begin != position:
            raise _bad_safetensors(f"the data of tensor {name!r} does not start where the "
                                   "previous one ends")
        position = end
    if position != len(data) - 8 - header_len:
        raise _bad_safetensors(f"the tensors cover {position} bytes of data but the file has "
                               f"{len(data) - 8 - header_len}")
    return entries


def _tensor_span(name: str, info: Any, limits: Limits) -> tuple[int, int]:
    if not isinstance(info, dict):
        raise _bad_safetensors(f"the entry of tensor {name!r} is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in _DTYPE_BITS:
        raise _bad_safetensors(f"tensor {name!r} has an unknown dtype {dtype!r}")
    if not isinstance(shape, list) or len(shape) > limits.max_tensor_dims or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise _bad_safetensors(f"tensor {name!r} has an invalid shape (at most "
                               f"{limits.max_tensor_dims} non-negative sizes)")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(
            isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
            and offsets[0] <= offsets[1]):
        raise _bad_safetensors(f"tensor {name!r} has invalid data offsets")
    elements = 1
    for d in shape:
        elements *= d
    bits = elements * _DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != offsets[1] - offsets[0]:
        raise _bad_safetensors(f"tensor {name!r} of shape {shape} and dtype {dtype} does not "
                               "match the size of its data")
    return offsets[0], offsets[1]


def _torch_zip_kind(data: bytes, limits: Limits) -> str:
    """TorchScript archives hold code/; a torch.save pickle holds only data.pkl."""
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
        raise IntakeLimit("max_archive_entries", f"The .pt archive holds {len(names):,} "
                                                 f"files: the limit is "
                                                 f"{limits.max_archive_entries:,}.")
    if any("/code/" in n or n.endswith("constants.pkl") for n in names):
        return TORCHSCRIPT
    raise IntakeError(
        "The .pt file is a pickle made by torch.save, which the grader does not load: pickles "
        "can run code. Save the weights with safetensors instead: "
        "from safetensors.torch import save_file; save_file(model.state_dict(), "
        "'model.safetensors'). A TorchScript file (torch.jit.script(model).save('model.pt')) "
        "is accepted too."
    )


def _check_onnx(data: bytes) -> None:
    # An ONNX file is a protobuf ModelProto; a cheap sanity check without parsing it here.
    if len(data) < 16 or data[:1] not in (b"\x08", b"\x12", b"\x1a", b"\x22", b"\x3a"):
        raise IntakeError("The .onnx file does not look like an ONNX model.")
