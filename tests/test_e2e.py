"""A notebook submitted over HTTP is graded by a worker and its score is stored:
against PostgreSQL + Redis + Celery worker processes, and in embedded mode."""

from __future__ import annotations

import pytest

from graders.notebooks import code_notebook, with_extra_cell
from tests.support.notebooks import course_notebook, variants
from tests.support.paths import REFERENCE
from tests.support.stack import Stack, dump

ASSIGNMENTS = ["hw1-training-basics", "hw4-small-data"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_full_marks_and_starter_zero(any_stack: Stack, assignment: str) -> None:
    solution = any_stack.grade(
        "alice", assignment, "solution.ipynb", course_notebook(assignment, "solution")
    )
    assert solution["status"] == "graded", dump(solution)
    assert solution["score"] == pytest.approx(solution["max_score"]), dump(solution)
    assert solution["max_score"] > 0
    assert all(ex["score"] == pytest.approx(ex["max_score"]) for ex in solution["exercises"])

    starter = any_stack.grade(
        "alice", assignment, "starter.ipynb", course_notebook(assignment, "starter")
    )
    assert starter["status"] == "graded", dump(starter)
    assert starter["score"] == 0, dump(starter)
    outcomes = {t["outcome"] for ex in starter["exercises"] for t in ex["tests"]}
    assert outcomes <= {"error", "failed"}, outcomes


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_each_buggy_variant_loses_points_on_its_exercise(pg_stack: Stack, assignment: str) -> None:
    solution = course_notebook(assignment, "solution")
    found = variants(assignment)
    assert len(found) >= 4
    for path in found:
        exercise = path.stem.split("__")[0]
        body = pg_stack.grade(
            "bob", assignment, f"{path.stem}.ipynb", with_extra_cell(solution, path.read_text())
        )
        assert body["status"] == "graded", dump(body)
        scores = {ex["slug"]: (ex["score"], ex["max_score"]) for ex in body["exercises"]}
        got, best = scores[exercise]
        assert got < best, f"{path.name} kept full marks on {exercise}: {dump(body)}"
        for other, (o_got, o_best) in scores.items():
            if other != exercise:
                assert o_got == pytest.approx(o_best), f"{path.name} lost points on {other}"


def test_syntax_error_cell_is_reported_and_the_rest_graded(any_stack: Stack) -> None:
    solution = course_notebook("hw1-training-basics", "solution")
    broken = with_extra_cell(solution, "def oops(:\n    pass\n")
    body = any_stack.grade("alice", "hw1-training-basics", "broken.ipynb", broken)
    assert body["status"] == "graded"
    assert body["score"] == pytest.approx(body["max_score"])
    bad_cells = [c for c in body["cells"] if c["status"] == "syntax_error"]
    assert len(bad_cells) == 1, dump(body)
    assert "SyntaxError" in bad_cells[0]["message"]
    assert bad_cells[0]["index"] > 1


def test_missing_function_feedback_names_the_broken_cell(pg_stack: Stack) -> None:
    notebook = code_notebook(
        "import torch",
        "def label_smoothing_ce(logits, target, smoothing)\n    return logits.sum()\n",
        "def early_stopping_epoch(val_losses, patience, min_delta=0.0):\n"
        "    return len(val_losses) - 1\n",
    )
    body = pg_stack.grade("alice", "hw1-training-basics", "partial.ipynb", notebook)
    by_slug = {ex["slug"]: ex for ex in body["exercises"]}
    ls = by_slug["label_smoothing_ce"]
    assert ls["score"] == 0
    assert "not defined" in ls["tests"][0]["feedback"]
    assert "cell 2" in ls["tests"][0]["feedback"]
    assert by_slug["early_stopping_epoch"]["score"] > 0


def test_magics_and_shell_lines_do_not_break_grading(any_stack: Stack) -> None:
    solution = course_notebook("hw1-training-basics", "solution")
    noisy = with_extra_cell(solution, "%matplotlib inline\n!pip install nothing\nx = 1\n")
    noisy = with_extra_cell(noisy, "%%bash\necho hi > /tmp/pwned\n")
    body = any_stack.grade("alice", "hw1-training-basics", "magics.ipynb", noisy)
    assert body["score"] == pytest.approx(body["max_score"]), dump(body)


def test_python_file_submission(pg_stack: Stack) -> None:
    alternatives = REFERENCE / "hw1-training-basics" / "alternatives"
    source = "# %%\n" + (alternatives / "label_smoothing_ce__torch_builtin.py").read_text()
    source += "\n# %%\n" + (alternatives / "early_stopping_epoch__while_loop.py").read_text()
    body = pg_stack.grade("alice", "hw1-training-basics", "hw1.py", source.encode())
    assert body["file_kind"] == "python"
    assert body["score"] == pytest.approx(body["max_score"]), dump(body)


def test_job_record_explains_the_score(pg_stack: Stack) -> None:
    body = pg_stack.grade(
        "alice",
        "hw1-training-basics",
        "solution.ipynb",
        course_notebook("hw1-training-basics", "solution"),
    )
    with pg_stack.client("tina") as c:
        jobs = c.get(f"/api/v1/submissions/{body['id']}/jobs").json()
    assert len(jobs) == 1
    job = jobs[0]
    assert job["status"] == "graded" and job["attempt"] == 1
    assert job["worker_host"] and job["grader_version"] and job["assignment_version"]
    assert job["isolation"] and job["seeds"] and job["durations"]["total"] > 0
    assert job["started_at"] and job["finished_at"]
