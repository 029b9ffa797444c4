"""What `autograder assignment import` refuses, each with a sentence for the instructor, and
the two formats' rules on their own (solution removal, Otter's points)."""

from __future__ import annotations

from pathlib import Path

import pytest

from graders.authoring.importer import import_notebook, plan_import
from graders.authoring.otter import replace_solutions, resolve_points
from graders.authoring.plan import AuthoringError
from graders.course import load_assignment
from graders.dsl import GraderError
from graders.intake import NOTEBOOK
from graders.runner import grade
from tests.support.authoring_notebooks import (
    graded_test,
    manual,
    nbgrader_notebook,
    otter_notebook,
    solution,
)
from worker.sandbox.launcher import sandbox_provider

pytestmark = pytest.mark.fast

SETUP = ("code", "import torch", None)
ANSWER = solution("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION")


def _refusal(tmp_path: Path, *cells: tuple[str, str, dict[str, object] | None]) -> str:
    source = nbgrader_notebook(tmp_path / "source.ipynb", *cells)
    with pytest.raises(AuthoringError) as info:
        import_notebook(source, "nbgrader", "refused", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing is left behind
    return str(info.value)


@pytest.mark.parametrize(
    ("test", "sentence"),
    [
        ("assert globals()['double'](2) == 4", "reads the namespace as a whole"),
        ("import inspect\nassert 'return' in inspect.getsource(double)", "inspects code or frames"),
        ("assert double.__code__.co_argcount == 1", "inspects code or frames"),
        ("assert double(2) == int(open('answer.txt').read())", "reads files"),
        ("assert eval('double(2)') == 4", "runs code from a string"),
        ("assert double(2) == four", "uses `four`, which no cell before it defines"),
        ("assert 2 + 2 == 4", "does not use anything the student writes"),
        ("assert double(2) == 5", "fails on the solution"),
    ],
)
def test_a_test_the_grader_cannot_run_is_refused(tmp_path: Path, test: str, sentence: str) -> None:
    message = _refusal(tmp_path, SETUP, ANSWER, graded_test(test, "t", 1))
    assert sentence in message, message


def test_a_name_only_an_earlier_test_defines_is_refused(tmp_path: Path) -> None:
    message = _refusal(
        tmp_path,
        SETUP,
        ANSWER,
        graded_test("x = torch.ones(2)\nassert double(1) == 2", "t1", 1),
        graded_test("assert torch.equal(double(x), 2 * x)", "t2", 1),
    )
    assert "uses `x`, which only an earlier test cell defines" in message


@pytest.mark.parametrize(
    ("cells", "sentence"),
    [
        ([SETUP, solution("def f():\n    ### BEGIN SOLUTION\n    return 1")], "is never closed"),
        (
            [
                SETUP,
                ANSWER,
                ("code", "assert double(1) == 2", {"grade": True, "solution": False, "points": 1}),
            ],
            "needs a `grade_id`",
        ),
        (
            [
                SETUP,
                ANSWER,
                (
                    "code",
                    "assert double(1) == 2",
                    {"grade": True, "solution": False, "grade_id": "t"},
                ),
            ],
            "needs `points` greater than 0",
        ),
        (
            [
                (
                    "code",
                    "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION",
                    None,
                )
            ],
            "is not a solution cell",
        ),
        (
            [
                SETUP,
                ANSWER,
                graded_test("assert double(1) == 2", "t", 1),
                graded_test("assert double(2) == 4", "t", 1),
            ],
            "is used twice",
        ),
        ([SETUP, ANSWER], "no autograder test cell"),
    ],
)
def test_malformed_nbgrader_markup_is_refused(
    tmp_path: Path, cells: list[tuple[str, str, dict[str, object] | None]], sentence: str
) -> None:
    assert sentence in _refusal(tmp_path, *cells)


def test_setup_code_that_fails_in_the_grader_is_refused(tmp_path: Path) -> None:
    message = _refusal(
        tmp_path,
        ("code", "import torch\ndata = load_my_dataset()", None),
        ANSWER,
        graded_test("assert double(1) == 2", "t", 1),
    )
    assert "fails when the grader runs it" in message and "NameError" in message


def _otter(tmp_path: Path, *cells: tuple[str, str]) -> Path:
    return otter_notebook(tmp_path / "otter.ipynb", ("code", "import torch"), *cells)


def _question(name: str, *body: tuple[str, str], extra: str = "") -> list[tuple[str, str]]:
    return [("raw", f"# BEGIN QUESTION\nname: {name}\n{extra}"), *body, ("raw", "# END QUESTION")]


def test_otter_refusals(tmp_path: Path) -> None:
    manual_without_points = _question(
        "essay",
        ("raw", "# BEGIN SOLUTION"),
        ("markdown", "**SOLUTION:** because."),
        ("raw", "# END SOLUTION"),
        extra="manual: true",
    )
    with pytest.raises(AuthoringError, match="a manual question needs `points`"):
        plan_import(_otter(tmp_path, *manual_without_points), "otter", "o")
    untested = _question(
        "q1",
        ("raw", "# BEGIN SOLUTION"),
        ("code", "x = 1 # SOLUTION"),
        ("raw", "# END SOLUTION"),
        extra="points: 1",
    )
    with pytest.raises(AuthoringError, match="has no test cases and is not manual"):
        plan_import(_otter(tmp_path, *untested), "otter", "o")
    model_value = _question(
        "q1",
        ("raw", "# BEGIN SOLUTION"),
        ("code", "layer = torch.nn.Linear(2, 2) # SOLUTION"),
        ("raw", "# END SOLUTION"),
        ("raw", "# BEGIN TESTS"),
        ("code", "layer"),
        ("raw", "# END TESTS"),
    )
    with pytest.raises(AuthoringError, match="can compare only data"):
        import_notebook(_otter(tmp_path, *model_value), "otter", "o", tmp_path / "out")
    unclosed = [
        ("raw", "# BEGIN QUESTION\nname: q1"),
        ("raw", "# BEGIN TESTS"),
        ("code", "x"),
        ("raw", "# END QUESTION"),
    ]
    with pytest.raises(AuthoringError, match="block is never closed"):
        plan_import(_otter(tmp_path, *unclosed), "otter", "o")


def test_manual_exercises_become_manual_entries(tmp_path: Path) -> None:
    source = nbgrader_notebook(
        tmp_path / "m.ipynb",
        SETUP,
        ANSWER,
        graded_test("assert double(3) == 6", "t", 1),
        manual("### BEGIN SOLUTION\nBecause.\n### END SOLUTION", "why", 3),
    )
    plan = plan_import(source, "nbgrader", "m")
    assert [(e.slug, e.kind, e.points) for e in plan.exercises] == [
        ("t", "function", 1.0),
        ("why", "manual", 3.0),
    ]
    assert plan.exercise("t") is not None and plan.exercise("t").requires == ("double",)


# -- the formats' rules ------------------------------------------------------------------
def test_otter_solution_removal_follows_jassign_rules() -> None:
    student, solution_text, _ = replace_solutions(
        "def square(x):\n    y = x * x # SOLUTION NO PROMPT\n    return y # SOLUTION\n\n"
        "nine = square(3) # SOLUTION",
        "cell",
    )
    assert student == "def square(x):\n    ...\n\nnine = ..."
    assert solution_text == "def square(x):\n    y = x * x\n    return y\n\nnine = square(3)"
    student, solution_text, _ = replace_solutions(
        "pi = 3.14\nif True:\n    # BEGIN SOLUTION\n    radius = 3\n    area = radius * pi\n"
        "    # END SOLUTION\n    print(area)\ndef circumference(r):\n"
        "    # BEGIN SOLUTION NO PROMPT\n    return 2 * pi * r\n    # END SOLUTION\n"
        '    """ # BEGIN PROMPT\n    # Next, define a circumference function.\n    pass\n'
        '    """; # END PROMPT',
        "cell",
    )
    assert student == (
        "pi = 3.14\nif True:\n    ...\n    print(area)\ndef circumference(r):\n"
        "    # Next, define a circumference function.\n    pass"
    )
    assert "return 2 * pi * r" in solution_text and "BEGIN" not in solution_text
    assert "Next, define" not in solution_text


@pytest.mark.parametrize(
    ("question", "cases", "expected"),
    [
        (None, [None, None], [0.5, 0.5]),  # 1 point, equally weighted
        (4, [None, None, None, None], [1.0, 1.0, 1.0, 1.0]),
        (6, [2, None, 2, None], [2.0, 1.0, 2.0, 1.0]),  # Otter's documented example
        (None, [2, None], [2.0, 0.0]),  # unspecified cases are worth 0
        (None, [0, None], [0.0, 1.0]),  # ... unless all specified are 0
        ([1, 2], [None, None], [1.0, 2.0]),
        ({"each": 2}, [None, None, None], [2.0, 2.0, 2.0]),
        (2, [None, None, None], [0.666667, 0.666667, 0.666666]),
    ],
)
def test_otter_points_resolve_as_otter_documents(
    question: object, cases: list[float | None], expected: list[float]
) -> None:
    assert resolve_points(question, cases, "q") == pytest.approx(expected)


def test_otter_points_that_do_not_add_up_are_refused() -> None:
    with pytest.raises(AuthoringError, match="worth 3 points but the question says 2"):
        resolve_points(2, [1, 2], "q")
    with pytest.raises(AuthoringError, match="lists 1 values for 2 test cases"):
        resolve_points([1], [None, None], "q")


def test_ipython_lines_of_the_notebooks_own_cells_are_accepted(tmp_path: Path) -> None:
    source = nbgrader_notebook(
        tmp_path / "magic.ipynb",
        ("code", "%matplotlib inline\nimport torch\nq = torch.ones(2)\ndisplay(q)", None),
        ANSWER,
        graded_test("assert torch.equal(double(q), 2 * q)", "t", 1),
    )
    report = import_notebook(source, "nbgrader", "magic", tmp_path / "out")
    assert [e[0] for e in report.exercises] == ["t"]
    reference = (tmp_path / "out" / "reference.py").read_text()
    assert "pass  # IPython magic or shell line skipped by the grader" in reference
    assert "\n%matplotlib" not in reference


def test_a_test_failing_on_an_edited_solution_is_the_courses_fault(tmp_path: Path) -> None:
    source = nbgrader_notebook(
        tmp_path / "s.ipynb", SETUP, ANSWER, graded_test("assert double(2) == 4", "t", 1)
    )
    out = tmp_path / "out"
    import_notebook(source, "nbgrader", "edited", out)
    reference = out / "reference.py"
    reference.write_text(reference.read_text().replace("return 2 * x", "return 3 * x"))
    loaded = load_assignment(out)
    notebook = (out / "notebooks" / "solution.ipynb").read_bytes()
    # Never a student's zero: the job fails as the grader's, and says why.
    with pytest.raises(GraderError, match="fails on the solution"):
        grade(loaded, NOTEBOOK, notebook, sandbox_provider((loaded.meta.public_dir,), None))
