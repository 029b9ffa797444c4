"""Imported tests run in the trusted grader, against proxies of the student's names: what a
submission does in its own cells (patching torch.allclose or the builtins, reading files,
walking the stack to find the expected value, answering with an object that equals
everything) happens in its sandbox and earns it nothing."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest
import torch

from graders.authoring.importer import import_notebook
from graders.course import load_assignment
from graders.intake import NOTEBOOK
from graders.notebooks import with_extra_cell
from graders.runner import GradeReport, grade
from graders.selfcheck import check_assignment
from tests.support.authoring_notebooks import graded_test, nbgrader_notebook, solution
from tests.support.isolation import layer_missing
from tests.support.paths import FIXTURES as SUPPORT_FIXTURES
from worker.sandbox.launcher import sandbox_provider

pytestmark = pytest.mark.fast

FIXTURES = SUPPORT_FIXTURES / "authoring"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trust")
    out = {}
    for fmt in ("nbgrader", "otter"):
        out[fmt] = root / fmt
        import_notebook(FIXTURES / f"{fmt}_source.ipynb", fmt, f"trust-{fmt}", out[fmt])
    return out


def _grade_with(folder: Path, cell: str) -> GradeReport:
    loaded = load_assignment(folder)
    data = with_extra_cell((folder / "notebooks" / "solution.ipynb").read_bytes(), cell)
    return grade(loaded, NOTEBOOK, data, sandbox_provider((loaded.meta.public_dir,), None))


CHEATS = {
    "an object equal to everything": """
class Anything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
    def __float__(self): return 0.14
    def item(self): return 0.0
    shape = ()
def l2_penalty(w, lam):
    return Anything()
""",
    "torch.allclose and the builtins patched in its own cells": """
import builtins, torch
torch.allclose = lambda *args, **kwargs: True
torch.Tensor.__eq__ = lambda self, other: True
builtins.AssertionError = type("AssertionError", (Exception,), {})
builtins.all = lambda *args: True
def l2_penalty(w, lam):
    return torch.tensor(0.0)
""",
    "a walk up the stack for the expected value": """
import sys, torch
def l2_penalty(w, lam):
    frame, found = sys._getframe(1), None
    while frame is not None:
        for value in frame.f_locals.values():
            if isinstance(value, torch.Tensor) and value.dim() == 0:
                found = value
        frame = frame.f_back
    return found if found is not None else torch.tensor(-1.0)
""",
    "a forged handle": """
from protocol.codec import Handle
def l2_penalty(w, lam):
    return Handle(1)
""",
}


@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_a_cheat_in_the_submission_gets_no_credit(cheat: str, folders: dict[str, Path]) -> None:
    report = _grade_with(folders["nbgrader"], CHEATS[cheat])
    assert report.exercise_score("test_l2_penalty") == 0.0, [
        (t.name, t.outcome, t.feedback) for t in report.tests
    ]
    # The other exercises are graded as usual: nothing leaked out of the sandbox.
    assert report.exercise_score("test_clip_gradients") == 3.0
    assert report.exercise_score("test_tiny_mlp") == 2.0
    assert torch.allclose(torch.tensor(1.0), torch.tensor(2.0)) is False
    assert builtins.AssertionError is AssertionError


def test_reading_the_graders_files_gives_nothing(folders: dict[str, Path]) -> None:
    folder = folders["nbgrader"]
    cell = f"""
import torch
def l2_penalty(w, lam):
    namespace = {{}}
    for path in ({str(folder / "reference.py")!r}, {str(folder / "tests.py")!r}):
        try:
            exec(open(path).read(), namespace)
        except Exception:
            pass
    if "l2_penalty" in namespace:
        return namespace["l2_penalty"](w, lam)
    return torch.tensor(0.0)
"""
    report = _grade_with(folder, cell)
    if "pivot_root" not in report.isolation:
        layer_missing(f"this host's sandbox does not hide files ({report.isolation})")
    assert report.exercise_score("test_l2_penalty") == 0.0


def test_ok_format_answers_that_equal_everything_get_no_credit(folders: dict[str, Path]) -> None:
    report = _grade_with(
        folders["otter"],
        """
class Anything:
    def __eq__(self, other): return True
    def __float__(self): return 0.5
    def __repr__(self): return "0.5"
temperature = Anything()
def softmax(x):
    return Anything()
""",
    )
    assert report.exercise_score("temperature") == 0.0
    assert report.exercise_score("softmax") == 0.0
    assert report.exercise_score("accuracy") == 2.0
    feedback = [t.feedback for t in report.tests if t.exercise == "temperature"]
    assert "stays in the sandbox" in feedback[0]


def test_an_object_of_the_students_class_is_used_through_the_sandbox(
    folders: dict[str, Path],
) -> None:
    # TinyMLP's test builds the student's model (a handle), calls it and its
    # submodules, and iterates over its parameters: all through the sandbox.
    report = _grade_with(folders["nbgrader"], "")
    assert report.exercise_score("test_tiny_mlp") == 2.0
    report = _grade_with(
        folders["nbgrader"],
        """
class TinyMLP(torch.nn.Module):
    def __init__(self, a, b, c):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(a, b), torch.nn.Linear(b, c)
        self.extra = torch.nn.Linear(1, 1)
    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
""",
    )
    assert report.exercise_score("test_tiny_mlp") == 0.0  # two parameters too many


def test_a_test_needing_what_a_proxy_cannot_carry_fails_the_self_check_with_a_sentence(
    tmp_path: Path,
) -> None:
    source = nbgrader_notebook(
        tmp_path / "net.ipynb",
        ("code", "import torch\nnet = torch.nn.Linear(2, 1)", None),
        solution(
            "def count_parameters(model):\n    ### BEGIN SOLUTION\n"
            "    return sum(p.numel() for p in model.parameters())\n"
            "    ### END SOLUTION"
        ),
        graded_test("assert count_parameters(net) == 3", "count", 1),
    )
    out = tmp_path / "net"
    import_notebook(source, "nbgrader", "net", out)  # the solution passes in the grader
    result = check_assignment(out, sandbox_provider)
    assert not result.ok
    row = next(r for r in result.rows if r.variant == "solution")
    assert (
        "cannot run in the grader: it passes a torch.nn.modules.linear.Linear to "
        "`count_parameters`" in row.problem
    )


def test_the_students_exception_can_be_expected_by_a_test(tmp_path: Path) -> None:
    source = nbgrader_notebook(
        tmp_path / "raises.ipynb",
        ("code", "import torch", None),
        solution(
            "def safe_log(x):\n    ### BEGIN SOLUTION\n    if (x <= 0).any():\n"
            "        raise ValueError('log of a non-positive value')\n"
            "    return torch.log(x)\n    ### END SOLUTION"
        ),
        graded_test(
            "try:\n    safe_log(torch.tensor([-1.0]))\n    raised = False\n"
            "except ValueError:\n    raised = True\nassert raised\n"
            "assert torch.allclose(safe_log(torch.tensor([1.0])), torch.tensor([0.0]))",
            "raises",
            1,
        ),
    )
    out = tmp_path / "raises"
    import_notebook(source, "nbgrader", "raises", out)
    assert check_assignment(out, sandbox_provider).ok
    no_check = _grade_with(out, "def safe_log(x):\n    return torch.log(x)")
    assert no_check.exercise_score("raises") == 0.0
