"""A notebook is graded on what it defines, even when parts of it fail to run."""

from __future__ import annotations

import pytest

from graders.course import LoadedAssignment, load_assignment
from graders.intake import NOTEBOOK
from graders.notebooks import code_notebook
from graders.runner import GradeReport, grade
from tests.support.paths import ALTERNATIVES, HW1_DIR
from worker.sandbox.launcher import sandbox_factory

pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def loaded() -> LoadedAssignment:
    return load_assignment(HW1_DIR)


def grade_cells(loaded: LoadedAssignment, *cells: str) -> GradeReport:
    factory = sandbox_factory(public_dirs=(loaded.meta.public_dir,))
    return grade(loaded, NOTEBOOK, code_notebook(*cells), factory)


def solution_source(name: str) -> str:
    return (ALTERNATIVES / name).read_text()


def test_a_failing_import_does_not_lose_the_definitions_below_it(
    loaded: LoadedAssignment,
) -> None:
    report = grade_cells(
        loaded,
        "from google.colab import drive\ndrive.mount('/content/drive')\n"
        + solution_source("label_smoothing_ce__torch_builtin.py"),
        solution_source("early_stopping_epoch__while_loop.py")
        + "\nassert early_stopping_epoch([1.0], 1) == 99, 'my own check fails'\n",
    )
    assert report.score == report.max_score, [(t.name, t.feedback) for t in report.tests]
    broken = {c.index: c for c in report.cells if c.status != "ok"}
    assert set(broken) == {1, 2}
    assert "google" in broken[1].message
    assert "my own check fails" in broken[2].message


def test_future_annotations_keep_applying_within_a_cell(loaded: LoadedAssignment) -> None:
    report = grade_cells(
        loaded,
        "from __future__ import annotations\n"
        "def early_stopping_epoch(val_losses: NotAType, patience: int, min_delta=0.0) -> int:\n"
        "    best, wait = float('inf'), 0\n"
        "    for e, loss in enumerate(val_losses):\n"
        "        if loss < best - min_delta:\n"
        "            best, wait = loss, 0\n"
        "        else:\n"
        "            wait += 1\n"
        "            if wait >= patience:\n"
        "                return e\n"
        "    return len(val_losses) - 1\n",
    )
    scores = {t.exercise: 0.0 for t in report.tests}
    for t in report.tests:
        scores[t.exercise] += t.score
    assert scores["early_stopping_epoch"] == 2.0, [(t.name, t.feedback) for t in report.tests]
    assert not [c for c in report.cells if c.status != "ok"]


def test_exit_in_a_cell_skips_only_that_statement(loaded: LoadedAssignment) -> None:
    report = grade_cells(
        loaded,
        "import sys\nsys.exit(0)\n" + solution_source("early_stopping_epoch__while_loop.py"),
    )
    assert sum(t.score for t in report.tests if t.exercise == "early_stopping_epoch") == 2.0
    assert "exit(0)" in report.cells[0].message
