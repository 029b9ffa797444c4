"""Submission intake: what kind of file this is, and the code cells it holds.

Runs in the trusted grader and in the API (to refuse bad files with a 422 before
anything is stored). It only parses: no student code is executed here.
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
from dataclasses import dataclass

import nbformat

NOTEBOOK = "notebook"
PYTHON = "python"
SAFETENSORS = "safetensors"
TORCHSCRIPT = "torchscript"
ONNX = "onnx"

CODE_KINDS = frozenset({NOTEBOOK, PYTHON})
MODEL_KINDS = frozenset({SAFETENSORS, TORCHSCRIPT, ONNX})


class IntakeError(ValueError):
    """The file cannot be graded; the message is a sentence for the student."""

    def __init__(self, message: str) -> None:
        message = message.strip()
        super().__init__(message if message.endswith((".", "?", "!")) else message + ".")


@dataclass(frozen=True)
class Cell:
    index: int
    source: str


def detect_kind(filename: str, data: bytes) -> str:
    """Decide what the upload is from its name and its first bytes; refuse the rest."""
    name = filename.lower()
    if not data:
        raise IntakeError("The file is empty.")
    if name.endswith(".ipynb"):
        read_notebook(data)  # raises IntakeError with the reason
        return NOTEBOOK
    if name.endswith(".py"):
        _decode_text(data, "Python file")
        return PYTHON
    if name.endswith(".safetensors"):
        _check_safetensors(data)
        return SAFETENSORS
    if name.endswith((".pt", ".pth", ".ts", ".jit")):
        return _torch_zip_kind(data)
    if name.endswith(".onnx"):
        _check_onnx(data)
        return ONNX
    raise IntakeError(
        f"Unsupported file type for {filename!r}: upload a Jupyter notebook (.ipynb), a Python "
        "file (.py), or a model file (.safetensors, TorchScript .pt, .onnx)."
    )


def _decode_text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IntakeError(f"The {what} is not valid UTF-8 text (byte {exc.start}).") from exc


def read_notebook(data: bytes) -> list[Cell]:
    """The notebook's code cells, in order, with notebook syntax made plain Python."""
    if not data.strip():
        raise IntakeError("The file is empty.")
    text = _decode_text(data, "notebook")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IntakeError(
            f"The file is not a Jupyter notebook: it is not valid JSON ({exc.msg} at line "
            f"{exc.lineno}, column {exc.colno}). Was it saved completely?"
        ) from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise IntakeError("The file is JSON but not a Jupyter notebook: it has no list of 'cells'.")
    try:
        with warnings.catch_warnings():
            # Notebooks from older Jupyter versions have no cell ids: nothing is wrong.
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(text, as_version=4)
    except Exception as exc:
        raise IntakeError(f"The notebook could not be read: {exc}") from exc
    cells: list[Cell] = []
    for index, cell in enumerate(notebook.cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        cells.append(Cell(index=index, source=plain_python(str(source))))
    return cells


_PERCENT_CELL = re.compile(r"^# ?(%%|In\[)", re.MULTILINE)


def read_python(data: bytes) -> list[Cell]:
    """A .py file; `# %%` markers (jupytext, VS Code) split it into cells."""
    text = _decode_text(data, "Python file")
    starts = [m.start() for m in _PERCENT_CELL.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    bounds = [*starts, len(text)]
    return [
        Cell(index=i, source=plain_python(text[a:b]))
        for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False), start=1)
        if text[a:b].strip()
    ]


def read_cells(kind: str, data: bytes) -> list[Cell]:
    if kind == NOTEBOOK:
        return read_notebook(data)
    if kind == PYTHON:
        return read_python(data)
    raise IntakeError(f"A {kind} file has no code cells.")


# Cell magics whose body is still Python that Jupyter would run.
_RUN_BODY_MAGICS = {"time", "timeit", "capture", "prun", "debug"}
_LINE_MAGIC = re.compile(r"^(\s*)(%|!)(.*)$")
_ASSIGN_MAGIC = re.compile(r"^(\s*)([\w.\[\], ]+?)\s*=\s*(%|!)(.*)$")
_RUN_LINE_MAGICS = ("%time ", "%timeit ", "%prun ")


def plain_python(source: str) -> str:
    """Turn IPython syntax (magics, `!` shell lines) into Python that does nothing harmful.

    A cell that already compiles is left exactly as written. Shell escapes never run:
    they become `pass` (or an empty list where their output is assigned).
    """
    try:
        compile(source, "<cell>", "exec", dont_inherit=True)
        return source
    except (SyntaxError, ValueError):
        pass
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


def _check_safetensors(data: bytes) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(data)
    except (SafetensorError, Exception) as exc:
        raise IntakeError(f"The file is not a valid safetensors file: {exc}") from exc
    if not tensors:
        raise IntakeError("The safetensors file holds no tensors.")


def _torch_zip_kind(data: bytes) -> str:
    """TorchScript archives hold code/; a torch.save pickle holds only data.pkl."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as exc:
        raise IntakeError(
            "The .pt file is not a TorchScript archive (it is not a zip file). Save the model "
            "with torch.jit.script(model).save('model.pt'), or save its weights with "
            "safetensors.torch.save_file(model.state_dict(), 'model.safetensors')."
        ) from exc
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
