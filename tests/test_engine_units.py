"""The grading engine's small steps, each on its own: intake and comparison."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from graders.compare import compare
from graders.course import load_assignment, load_assignment_meta
from graders.intake import NOTEBOOK, detect_kind, plain_python, read_notebook, read_python
from graders.intake_limits import IntakeError
from graders.notebooks import code_notebook
from graders.runner import grade

pytestmark = pytest.mark.fast

# -- intake -------------------------------------------------------------------------


def test_a_valid_cell_is_left_exactly_as_written() -> None:
    source = "x = '%not a magic'\ny = 2  # !not a shell line\n"
    assert plain_python(source) == source


@pytest.mark.parametrize(
    ("source", "absent", "defined"),
    [
        ("%matplotlib inline\nx = 1\n", "%matplotlib", {"x": 1}),
        ("!pip install torch\nx = 1\n", "!pip", {"x": 1}),
        ("files = !ls\nx = 1\n", "!ls", {"files": [], "x": 1}),
        ("for i in range(2):\n    !echo hi\n    x = i\n", "!echo", {"i": 1, "x": 1}),
        ("%%bash\nrm -rf /\n", "rm -rf", {}),
        ("%time y = 3\n", "%time", {"y": 3}),
    ],
)
def test_magics_and_shell_lines_become_harmless_python(
    source: str, absent: str, defined: dict[str, object]
) -> None:
    """The magic or shell line is gone; the Python around it runs as written."""
    out = plain_python(source)
    assert absent not in out.replace("# cell magic %%bash", "")
    namespace: dict[str, object] = {}
    exec(compile(out, "<cell>", "exec"), namespace)
    namespace.pop("__builtins__")
    assert namespace == defined


def test_time_cell_magic_keeps_its_body() -> None:
    namespace: dict[str, object] = {}
    exec(compile(plain_python("%%time\nz = 40 + 2\n"), "<cell>", "exec"), namespace)
    assert namespace["z"] == 42


def test_notebook_code_cells_are_numbered_by_their_place_in_the_notebook() -> None:
    nb = json.loads(code_notebook("a = 1", "b = 2"))
    nb["cells"].insert(1, {"cell_type": "markdown", "metadata": {}, "source": "# title"})
    cells = read_notebook(json.dumps(nb).encode())
    assert [(c.index, c.source.strip()) for c in cells] == [(1, "a = 1"), (3, "b = 2")]


def test_percent_markers_split_a_python_file_into_cells() -> None:
    cells = read_python(b"import torch\n# %%\ndef f():\n    return 1\n# %%\nx = f(\n")
    assert len(cells) == 3
    assert "def f" in cells[1].source


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("a.ipynb", b"", "empty"),
        ("a.ipynb", b"[1, 2]", "not a Jupyter notebook"),
        ("a.ipynb", b'{"cells": [', "not valid JSON"),
        ("a.py", b"\xff\xfe", "UTF-8"),
        ("a.zip", b"PK", "Unsupported file type"),
        ("a.pt", b"not a zip", "TorchScript"),
        ("a.safetensors", b"\x00" * 16, "safetensors"),
        ("a.onnx", b"\xff" * 32, "ONNX"),
    ],
)
def test_unreadable_uploads_are_refused_with_a_sentence(name: str, data: bytes, words: str) -> None:
    with pytest.raises(IntakeError) as info:
        detect_kind(name, data)
    assert words in str(info.value)
    assert str(info.value)[-1] in ".?!"


# -- comparison -----------------------------------------------------------------------


def test_shape_then_dtype_then_values() -> None:
    expected = torch.zeros(3, 2)
    assert "shape (2, 3)" in compare(torch.zeros(2, 3), expected).message
    assert (
        "dtype torch.float64" in compare(torch.zeros(3, 2, dtype=torch.float64), expected).message
    )
    got = expected.clone()
    got[2, 1] = 0.5
    verdict = compare(got, expected)
    assert not verdict.passed
    assert "1 of 6 values" in verdict.message and "(2, 1)" in verdict.message
    assert compare(expected + 1e-7, expected).passed


def test_wrong_kinds_of_answer_say_what_came_back() -> None:
    assert "drop the .item()" in compare(0.5, torch.tensor(0.5)).message
    assert "numpy" in compare(np.zeros(2), torch.zeros(2)).message
    assert "tuple of 2" in compare(torch.zeros(1), (torch.zeros(1), torch.zeros(1))).message
    assert compare((3, 4), (3, 4)).passed and compare([3, 4], (3, 4)).passed
    assert not compare(True, 1).passed
    assert compare(torch.tensor(3), 3).passed
    assert "NaN" in compare(torch.tensor([float("nan")]), torch.tensor([1.0])).message


def test_the_safe_message_never_holds_values_but_the_detail_does() -> None:
    expected = torch.tensor([0.123456])
    verdict = compare(torch.tensor([0.987654]), expected)
    assert "0.123" not in verdict.message and "0.987" not in verdict.message
    assert "0.123456" in verdict.detail


# -- resources per exercise ----------------------------------------------------------


def test_exercises_declare_device_memory_and_time() -> None:
    reference = Path(__file__).resolve().parent.parent / "reference"
    hw1 = load_assignment_meta(reference / "hw1-training-basics")
    digits = next(e for e in hw1.exercises if e.slug == "digits-classifier")
    assert (digits.memory_mb, digits.timeout) == (3072, 20)
    assert (
        load_assignment(reference / "hw1-training-basics").exercises["digits-classifier"].timeout
        == 20
    )
    hw2 = load_assignment_meta(reference / "hw2-interpretability")
    assert {e.slug: e.device for e in hw2.exercises}["grad_cam"] == "gpu"


def test_an_unreadable_notebook_is_graded_as_the_students_not_failed() -> None:
    hw1 = load_assignment(
        Path(__file__).resolve().parent.parent / "reference" / "hw1-training-basics"
    )

    def no_sandbox() -> None:
        raise AssertionError("an unreadable file must not start a sandbox")

    report = grade(hw1, NOTEBOOK, b'{"cells": [' * 10, no_sandbox)  # type: ignore[arg-type]
    assert report.tests and report.score == 0
    assert {t.outcome for t in report.tests} == {"error"}
    assert all("could not be read" in t.feedback for t in report.tests)
