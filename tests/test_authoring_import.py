"""Round trips of `autograder assignment import`: an nbgrader and an Otter Assign (v1)
source notebook (tests/fixtures/authoring/, written from each tool's documented format)
become assignment folders that pass the self-check; the solution scores full marks, a
buggy answer loses points on its own exercise only, the starter scores zero; nothing a
student can read holds a line of a solution or of a hidden test."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import nbformat
import pytest

from cli.main import main as cli_main
from graders.authoring.importer import import_notebook
from graders.course import load_assignment
from graders.intake import NOTEBOOK
from graders.notebooks import with_extra_cell
from graders.runner import GradeReport, grade
from graders.selfcheck import check_assignment
from graders.selfcheck_report import format_table
from tests.support.paths import FIXTURES as SUPPORT_FIXTURES
from worker.sandbox.launcher import sandbox_provider

pytestmark = pytest.mark.fast

FIXTURES = SUPPORT_FIXTURES / "authoring"
NBGRADER = FIXTURES / "nbgrader_source.ipynb"
OTTER = FIXTURES / "otter_source.ipynb"


@pytest.fixture(scope="module")
def nbgrader_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nbgrader") / "regularisation"
    # Through the command line, as an instructor runs it (the self-check included).
    assert (
        cli_main(
            [
                "assignment",
                "import",
                str(NBGRADER),
                "--format",
                "nbgrader",
                "--slug",
                "regularisation",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def otter_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("otter") / "softmax-week"
    import_notebook(OTTER, "otter", "softmax-week", out)
    return out


def _grade(folder: Path, notebook: bytes) -> GradeReport:
    loaded = load_assignment(folder)
    return grade(loaded, NOTEBOOK, notebook, sandbox_provider((loaded.meta.public_dir,), None))


def _solution_plus(folder: Path, cell: str) -> bytes:
    return with_extra_cell((folder / "notebooks" / "solution.ipynb").read_bytes(), cell)


def _scores(report: GradeReport) -> dict[str, float]:
    return {e: report.exercise_score(e) for e in report.exercises}


# -- what the import writes ---------------------------------------------------------------
def test_nbgrader_folder_has_the_exercises_of_the_source(nbgrader_folder: Path) -> None:
    meta = tomllib.loads((nbgrader_folder / "assignment.toml").read_text())
    assert meta["slug"] == "regularisation" and meta["imported_from"] == "nbgrader"
    assert meta["title"] == "Regularisation and training helpers"
    exercises = {(e["slug"], e["kind"], e["points"]) for e in meta["exercises"]}
    assert exercises == {
        ("test_l2_penalty", "function", 2.0),
        ("test_clip_gradients", "function", 3.0),
        ("test_tiny_mlp", "function", 2.0),
        ("explain_l2", "manual", 2.0),
    }
    for path in (
        "reference.py",
        "tests.py",
        "notebooks/starter.ipynb",
        "notebooks/solution.ipynb",
        "variants/README.txt",
        "public",
    ):
        assert (nbgrader_folder / path).exists(), path
    assert "ex.imported(" in (nbgrader_folder / "tests.py").read_text()


def test_otter_points_are_split_over_test_cases_as_otter_does(otter_folder: Path) -> None:
    meta = tomllib.loads((otter_folder / "assignment.toml").read_text())
    points = {e["slug"]: (e["kind"], e["points"]) for e in meta["exercises"]}
    assert points == {
        "softmax": ("function", 3.0),
        "accuracy": ("function", 2.0),
        "temperature": ("function", 1.0),
        "discussion": ("manual", 2.0),
    }
    loaded = load_assignment(otter_folder)
    softmax = [t.points for t in loaded.exercises["softmax"].tests]
    # 3 points, one case says 1: the other four share the remaining 2 equally.
    assert softmax == [0.5, 0.5, 0.5, 0.5, 1.0]
    assert [t.visibility for t in loaded.exercises["softmax"].tests] == [
        "visible",
        "visible",
        "visible",
        "hidden",
        "hidden",
    ]
    assert [t.visibility for t in loaded.exercises["accuracy"].tests] == ["visible", "hidden"]


def _cells(path: Path) -> list[nbformat.NotebookNode]:
    return list(nbformat.reads(path.read_text(), as_version=4).cells)


def test_manual_answers_are_tagged_with_their_exercise(
    nbgrader_folder: Path, otter_folder: Path
) -> None:
    for folder, slug in ((nbgrader_folder, "explain_l2"), (otter_folder, "discussion")):
        tagged = [
            c
            for c in _cells(folder / "notebooks" / "starter.ipynb")
            if slug in c.metadata.get("tags", [])
        ]
        assert tagged and all(c.cell_type == "markdown" for c in tagged)


def _regions(text: str, begin: str, end: str) -> list[str]:
    found, inside = [], False
    for line in text.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside and line.strip():
            found.append(line.strip())
    return found


def _nbgrader_secrets() -> list[str]:
    secrets = []
    for cell in _cells(NBGRADER):
        secrets += _regions(cell.source, "BEGIN SOLUTION", "END SOLUTION")
        secrets += _regions(cell.source, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
    return secrets


def _otter_secrets() -> list[str]:
    secrets: list[str] = []
    block = None
    for cell in _cells(OTTER):
        first = cell.source.strip().split("\n")[0]
        if cell.cell_type == "raw" and re.match(r"# (BEGIN|END) (SOLUTION|TESTS)", first):
            block = first.split()[-1] if "BEGIN" in first else None
            continue
        if block == "SOLUTION":
            secrets += _regions(cell.source, "# BEGIN SOLUTION", "# END SOLUTION")
            secrets += [
                re.sub(r"#\s*SOLUTION.*$", "", line).split("=", 1)[-1].strip()
                for line in cell.source.splitlines()
                if re.search(r"#\s*SOLUTION( NO PROMPT)?\s*$", line)
            ]
            if cell.cell_type == "markdown":
                secrets += [line.strip() for line in cell.source.splitlines() if line.strip()]
        elif block == "TESTS" and cell.source.lstrip().startswith(("# HIDDEN", '"""')):
            secrets += [
                line.strip()
                for line in cell.source.splitlines()[1:]
                if line.strip()
                and "TEST CONFIG" not in line
                and not re.match(r"^(hidden|points):", line)
            ]
    return secrets


def _student_readable(folder: Path) -> str:
    texts = [(folder / "assignment.toml").read_text()]
    texts += [p.read_text() for p in (folder / "public").rglob("*") if p.is_file()]
    starter = json.loads((folder / "notebooks" / "starter.ipynb").read_text())
    texts.append(json.dumps(starter))  # sources, outputs and metadata alike
    texts += ["".join(c["source"]) for c in starter["cells"]]
    return "\n".join(texts)


@pytest.mark.parametrize("which", ["nbgrader", "otter"])
def test_nothing_a_student_reads_holds_a_solution_or_a_hidden_test(
    which: str, nbgrader_folder: Path, otter_folder: Path
) -> None:
    folder, secrets = (
        (nbgrader_folder, _nbgrader_secrets())
        if which == "nbgrader"
        else (otter_folder, _otter_secrets())
    )
    assert len(secrets) >= 8  # the fixture really has solutions and hidden tests
    readable = _student_readable(folder)
    leaked = [s for s in secrets if len(s) > 6 and s in readable]
    assert not leaked, leaked
    # The solution notebook runs in the sandbox at the self-check: no hidden test in it.
    solution = (folder / "notebooks" / "solution.ipynb").read_text()
    hidden = [s for s in secrets if "assert" in s or "softmax(torch.tensor([[1000" in s]
    assert not [s for s in hidden if s in solution and s not in readable]


def test_starters_replace_solutions_as_each_tool_does(
    nbgrader_folder: Path, otter_folder: Path
) -> None:
    nbgrader_code = "\n".join(
        c.source for c in _cells(nbgrader_folder / "notebooks" / "starter.ipynb")
    )
    assert nbgrader_code.count("raise NotImplementedError()") == 4
    assert "    # YOUR CODE HERE\n    raise NotImplementedError()" in nbgrader_code
    assert "YOUR ANSWER HERE" in nbgrader_code
    # Visible tests stay for students, hidden ones go.
    assert "assert torch.allclose(l2_penalty(q, 0.01), torch.tensor(0.14))" in nbgrader_code
    assert "BEGIN HIDDEN" not in nbgrader_code
    otter_code = "\n".join(c.source for c in _cells(otter_folder / "notebooks" / "starter.ipynb"))
    assert "def softmax(x):\n    ..." in otter_code
    assert "    predictions = ...\n    correct = ...\n    ..." in otter_code
    assert "temperature = ..." in otter_code
    assert "manual_seed(42)" not in otter_code  # a `# SEED` line goes
    assert "_Type your answer here, replacing this text._" in otter_code
    assert "# BEGIN" not in otter_code and "ASSIGNMENT CONFIG" not in otter_code
    assert "softmax(torch.zeros(2, 4))" in otter_code  # a visible OK test stays


# -- the self-check and grading ----------------------------------------------------------
@pytest.mark.parametrize("which", ["nbgrader", "otter"])
def test_imported_folders_pass_the_self_check_without_variants(
    which: str, nbgrader_folder: Path, otter_folder: Path
) -> None:
    folder = nbgrader_folder if which == "nbgrader" else otter_folder
    result = check_assignment(folder, sandbox_provider)
    table = format_table(result)
    assert result.ok, table
    rows = {r.variant: r for r in result.rows}
    assert rows["solution"].total == rows["solution"].max_score > 0
    assert rows["starter"].total == 0
    warnings = [r for r in result.rows if r.variant.startswith("variants of ")]
    assert warnings and all(r.ok and "WARNING" in r.expectation for r in warnings)


def test_nbgrader_buggy_answers_lose_points_on_their_own_exercise(nbgrader_folder: Path) -> None:
    full = {"test_l2_penalty": 2.0, "test_clip_gradients": 3.0, "test_tiny_mlp": 2.0}
    mean = _grade(
        nbgrader_folder,
        _solution_plus(
            nbgrader_folder, "def l2_penalty(w, lam):\n    return lam * (w ** 2).mean()"
        ),
    )
    assert _scores(mean) == {**full, "test_l2_penalty": 0.0}
    failed = next(t for t in mean.tests if t.exercise == "test_l2_penalty")
    # The failing line is a visible one: it is quoted; hidden lines never are.
    assert "l2_penalty(q, 0.01)" in failed.feedback
    no_relu = _grade(
        nbgrader_folder,
        _solution_plus(
            nbgrader_folder,
            (
                "class TinyMLP(torch.nn.Module):\n"
                "    def __init__(self, a, b, c):\n"
                "        super().__init__()\n"
                "        self.fc1, self.fc2 = torch.nn.Linear(a, b), torch.nn.Linear(b, c)\n"
                "    def forward(self, x):\n"
                "        return self.fc2(self.fc1(x))"
            ),
        ),
    )
    assert _scores(no_relu) == {**full, "test_tiny_mlp": 0.0}
    feedback = next(t for t in no_relu.tests if t.exercise == "test_tiny_mlp").feedback
    assert feedback == "a hidden check failed"


def test_otter_buggy_answers_lose_points_on_their_own_exercise(otter_folder: Path) -> None:
    naive = _grade(
        otter_folder,
        _solution_plus(
            otter_folder,
            "def softmax(x):\n    e = torch.exp(x)\n    return e / e.sum(-1, keepdim=True)",
        ),
    )
    scores = _scores(naive)
    # Only the hidden test with logits of 1000 overflows: half a point lost.
    assert scores["softmax"] == 2.5
    assert (scores["accuracy"], scores["temperature"]) == (2.0, 1.0)
    tensor = _grade(
        otter_folder,
        _solution_plus(
            otter_folder,
            "def accuracy(logits, labels):\n"
            "    return (logits.argmax(-1) == labels).float().mean()",
        ),
    )
    # The visible exception-based test passes (abs of a tensor); the hidden one says
    # "a Python float" and fails.
    assert _scores(tensor)["accuracy"] == 1.0
    assert _scores(tensor)["softmax"] == 3.0


@pytest.mark.parametrize("which", ["nbgrader", "otter"])
def test_a_stub_scores_zero(which: str, nbgrader_folder: Path, otter_folder: Path) -> None:
    folder = nbgrader_folder if which == "nbgrader" else otter_folder
    report = _grade(folder, (folder / "notebooks" / "starter.ipynb").read_bytes())
    assert report.score == 0 and report.max_score > 0


def test_per_assert_credit_when_the_instructor_asks(tmp_path: Path) -> None:
    out = tmp_path / "per-assert"
    import_notebook(NBGRADER, "nbgrader", "per-assert", out, per_assert=True)
    # Always scales to max_norm, even when the norm is already below it: of the three
    # asserts of the cell, only the one about small gradients fails.
    buggy = (
        "def clip_gradients(grads, max_norm):\n"
        "    total = torch.sqrt(sum((g ** 2).sum() for g in grads))\n"
        "    return [g * max_norm / float(total) for g in grads]"
    )
    report = _grade(out, _solution_plus(out, buggy))
    assert report.exercise_score("test_clip_gradients") == pytest.approx(2.0)
    all_or_nothing = tmp_path / "whole-cells"
    import_notebook(NBGRADER, "nbgrader", "whole-cells", all_or_nothing)
    report = _grade(all_or_nothing, _solution_plus(all_or_nothing, buggy))
    assert report.exercise_score("test_clip_gradients") == 0.0
