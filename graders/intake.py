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

The limits and refusals are in graders.intake_limits, the model-file checks in
graders.model_files.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from graders.intake_limits import (
    API_LIMITS,
    WORKER_LIMITS,
    Budget,
    IntakeError,
    IntakeLimit,
    IntakeTooLarge,
    Limits,
    check_nesting,
    load_json,
)
from graders.model_files import check_onnx, check_safetensors, check_torchscript

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
        check_torchscript(data, limits)
        return TORCHSCRIPT
    if name.endswith(".onnx"):
        check_onnx(data)
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


# -- notebooks and .py files -----------------------------------------------------------


def read_notebook(
    data: bytes, limits: Limits = API_LIMITS, budget: Budget | None = None
) -> list[CodeCell]:
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
        raise IntakeLimit(
            "max_cells",
            f"The notebook has {len(raw['cells'])} cells: the limit is {limits.max_cells}.",
        )
    check_nesting(raw, "notebook", limits)
    budget.check()
    version = raw.get("nbformat", 4)
    if not isinstance(version, int) or isinstance(version, bool) or version != 4:
        raise IntakeError(
            f"The notebook has format version {version!r}; the grader reads "
            "version 4 notebooks (save it again with Jupyter 4 or later)."
        )
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
            raise IntakeError(
                f"Cell {index} of the notebook has a source that is neither "
                "text nor a list of lines."
            )
        total += len(source)
        if total > limits.max_source_chars:
            raise _source_refusal(limits)
        sources.append((index, source))
    budget.check()
    return _plain_cells(sources, budget)


def _source_refusal(limits: Limits) -> IntakeLimit:
    return IntakeLimit(
        "max_source_chars",
        f"The code is too long: the limit is "
        f"{limits.max_source_chars:,} characters in all "
        "cells together.",
    )


def _plain_cells(sources: list[tuple[int, str]], budget: Budget) -> list[CodeCell]:
    cells = []
    for index, source in sources:
        cells.append(CodeCell(index=index, source=plain_python(source)))
        budget.check()
    return cells


_PERCENT_CELL = re.compile(r"^# ?(%%|In\[)", re.MULTILINE)


def read_python(
    data: bytes, limits: Limits = API_LIMITS, budget: Budget | None = None
) -> list[CodeCell]:
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
        raise IntakeLimit(
            "max_cells",
            f"The file has {len(starts)} cells (# %% markers): the limit is {limits.max_cells}.",
        )
    bounds = [*starts, len(text)]
    sources = [
        (i, text[a:b])
        for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False), start=1)
        if text[a:b].strip()
    ]
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
