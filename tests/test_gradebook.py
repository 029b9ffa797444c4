"""The gradebook: which submission counts (last or best, per kind of file), late
penalties applied, every enrolled student and only them, CSV that survives odd names;
over HTTP and from the CLI. In-process (fast tier): most rows are written straight into
the service's database (graded jobs with test results), one flow goes through real
grading."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from cli.main import main as cli_main
from core.accounts import enroll, get_or_create_user, issue_token
from core.models import Assignment, Course, GradingJob, Submission, TestResult, User
from tests.support.inprocess import InProcessService
from tests.support.paths import HW1
from tests.support.stack import dump
from tests.support.staffing import (
    Deployment,
    clone_course,
    hw1_source,
    patch_assignment,
    stack_db,
    submit,
    wait_graded,
)

pytestmark = pytest.mark.fast

EXERCISES = ("label_smoothing_ce", "early_stopping_epoch", "digits-classifier")
ODD = 'O\'Brien, "Bo" Zoë'
T0 = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)


def add_graded(
    stack: Deployment,
    course: str,
    student: str,
    kind: str,
    at: datetime,
    scores: dict[str, float],
    penalty: float = 0.0,
    status: str = "graded",
) -> str:
    """A submission with one job in `status` and, when graded, its test results."""
    with stack_db(stack) as db:
        course_id = db.scalar(select(Course.id).where(Course.slug == course))
        assignment = db.scalar(
            select(Assignment).where(Assignment.course_id == course_id, Assignment.slug == HW1)
        )
        user = db.scalar(select(User).where(User.name == student))
        assert assignment is not None and user is not None
        submission = Submission(
            assignment_id=assignment.id,
            user_id=user.id,
            sha256="0" * 64,
            filename="x",
            file_kind=kind,
            size_bytes=1,
            submitted_at=at,
        )
        db.add(submission)
        db.flush()
        raw = round(sum(scores.values()), 6)
        job = GradingJob(
            submission_id=submission.id,
            status=status,
            created_at=at,
            finished_at=at + timedelta(minutes=1),
        )
        if status == "graded":
            job.raw_score, job.penalty_percent = raw, penalty
            job.late_seconds = 3600.0 if penalty else 0.0
            job.score = round(raw * (1 - penalty / 100), 6)
            for position, (slug, score) in enumerate(scores.items()):
                # Two tests per exercise, as the real grader writes them.
                for half in range(2):
                    db.add(
                        TestResult(
                            job=job,
                            position=2 * position + half,
                            exercise_slug=slug,
                            name=f"{slug} {half}",
                            outcome="passed",
                            score=score / 2,
                            max_score=5,
                            visibility="hidden",
                            feedback="",
                        )
                    )
        db.add(job)
        db.flush()
        if status == "graded":
            submission.current_job_id = job.id
        return submission.id


@pytest.fixture(scope="module")
def book(service: InProcessService) -> dict[str, Any]:
    """Course gb-lab: students with submissions of each kind and policy, a staff member,
    a student with no submission, one with an odd name, one enrolled elsewhere only."""
    course = clone_course(
        service,
        "gb-lab",
        {"gina": "student", "hank": "student", "tina": "ta", "ivan": "instructor"},
    )
    with stack_db(service) as db:
        lab = db.scalar(select(Course).where(Course.slug == course))
        odd = get_or_create_user(db, ODD)
        enroll(db, odd, lab, "student")
        service.tokens[ODD] = issue_token(db, odd)
        other = db.scalar(select(Course).where(Course.slug == "dlp"))
        enroll(db, get_or_create_user(db, "outsider-gb"), other, "student")
    ids = {
        # gina: a good notebook, then a worse one, then a failed one; a late model file.
        "gina_good": add_graded(
            service,
            course,
            "gina",
            "notebook",
            T0,
            {"label_smoothing_ce": 3.0, "early_stopping_epoch": 2.0},
        ),
        "gina_worse": add_graded(
            service,
            course,
            "gina",
            "python",
            T0 + timedelta(hours=1),
            {"label_smoothing_ce": 1.0, "early_stopping_epoch": 2.0},
        ),
        "gina_failed": add_graded(
            service, course, "gina", "notebook", T0 + timedelta(hours=2), {}, status="failed"
        ),
        "gina_queued": add_graded(
            service, course, "gina", "notebook", T0 + timedelta(hours=3), {}, status="queued"
        ),
        "gina_model": add_graded(
            service,
            course,
            "gina",
            "safetensors",
            T0 + timedelta(hours=4),
            {"digits-classifier": 4.0},
            penalty=10,
        ),
        # The odd name: one late notebook (20 %).
        "odd": add_graded(
            service,
            course,
            ODD,
            "notebook",
            T0,
            {"label_smoothing_ce": 2.5, "early_stopping_epoch": 1.5},
            penalty=20,
        ),
        # Staff submissions never appear in the gradebook.
        "tina": add_graded(
            service,
            course,
            "tina",
            "notebook",
            T0,
            {"label_smoothing_ce": 3.0, "early_stopping_epoch": 2.0},
        ),
    }
    return {"course": course, "ids": ids}


def fetch(stack: Deployment, course: str, user: str = "tina", **params: str) -> list[list[str]]:
    with stack.client(user) as c:
        response = c.get(f"/api/v1/courses/{course}/gradebook.csv", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    return list(csv.reader(io.StringIO(response.text)))


def as_dicts(rows: list[list[str]]) -> list[dict[str, str]]:
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_wide_gradebook_counts_the_last_graded_submission(
    service: InProcessService, book: dict[str, Any]
) -> None:
    patch_assignment(service, book["course"], counting_policy="last")
    rows = fetch(service, book["course"])
    assert rows[0] == ["student", HW1, *(f"{HW1}/{e}" for e in EXERCISES)]
    by_student = {r["student"]: r for r in as_dicts(rows)}
    # Every enrolled student, only students, each once; names survive commas and quotes.
    assert sorted(by_student) == sorted(["gina", "hank", ODD])
    gina = by_student["gina"]
    # Last graded notebook (the worse one; failed and queued never count), model -10 %.
    assert gina[f"{HW1}/label_smoothing_ce"] == "1"
    assert gina[f"{HW1}/early_stopping_epoch"] == "2"
    assert gina[f"{HW1}/digits-classifier"] == "3.6"
    assert gina[HW1] == "6.6"
    odd = by_student[ODD]
    assert (odd[f"{HW1}/label_smoothing_ce"], odd[f"{HW1}/early_stopping_epoch"], odd[HW1]) == (
        "2",
        "1.2",
        "3.2",
    )
    assert by_student["hank"][HW1] == "0"


def test_best_policy_and_the_students_counts_flag(
    service: InProcessService, book: dict[str, Any]
) -> None:
    ids = book["ids"]

    def counts() -> dict[str, bool]:
        with service.client("gina") as c:
            return {
                k: c.get(f"/api/v1/submissions/{v}").json()["counts"]
                for k, v in ids.items()
                if k.startswith("gina")
            }

    patch_assignment(service, book["course"], counting_policy="last")
    assert counts() == {
        "gina_good": False,
        "gina_worse": True,
        "gina_failed": False,
        "gina_queued": False,
        "gina_model": True,
    }
    patch_assignment(service, book["course"], counting_policy="best")
    assert counts() == {
        "gina_good": True,
        "gina_worse": False,
        "gina_failed": False,
        "gina_queued": False,
        "gina_model": True,
    }
    gina = {r["student"]: r for r in as_dicts(fetch(service, book["course"]))}["gina"]
    assert (gina[f"{HW1}/label_smoothing_ce"], gina[HW1]) == ("3", "8.6")
    patch_assignment(service, book["course"], counting_policy="last")


def test_long_format_has_raw_penalty_and_final_scores(
    service: InProcessService, book: dict[str, Any]
) -> None:
    rows = as_dicts(fetch(service, book["course"], format="long"))
    assert len(rows) == 3 * len(EXERCISES)
    assert {"student", "assignment", "exercise", "raw_score", "penalty_percent", "score"} <= set(
        rows[0]
    )
    model = next(r for r in rows if r["student"] == "gina" and r["exercise"] == "digits-classifier")
    assert (model["raw_score"], model["penalty_percent"], model["score"]) == ("4", "10", "3.6")
    assert model["submission_id"] == book["ids"]["gina_model"]
    odd = [r for r in rows if r["student"] == ODD]
    assert [r["score"] for r in odd] == ["2", "1.2", "0"]
    assert odd[0]["raw_score"] == "2.5" and odd[0]["penalty_percent"] == "20"
    missing = next(r for r in rows if r["student"] == "hank")
    assert (missing["score"], missing["submission_id"]) == ("0", "")


def test_per_assignment_and_canvas_layouts(service: InProcessService, book: dict[str, Any]) -> None:
    one = fetch(service, book["course"], assignment=HW1)
    assert one[0][0] == "student" and one[0][1] == HW1
    canvas = fetch(service, book["course"], layout="canvas")
    assert canvas[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert canvas[0][5].endswith(f"({HW1})")
    with service.client("tina") as c:
        hw1 = c.get(f"/api/v1/courses/{book['course']}/assignments/{HW1}").json()
    assert canvas[1][0] == "Points Possible"
    assert float(canvas[1][5]) == pytest.approx(hw1["max_score"])
    by_id = {r[2]: r for r in canvas[2:]}
    assert by_id["gina"][5] == "6.6" and by_id[ODD][5] == "3.2"
    with service.client("tina") as c:
        for params, code in [
            ({"assignment": "hw99"}, 404),
            ({"format": "tall"}, 422),
            ({"layout": "moodle"}, 422),
            ({"layout": "canvas", "format": "long"}, 422),
        ]:
            response = c.get(f"/api/v1/courses/{book['course']}/gradebook.csv", params=params)
            assert response.status_code == code, (params, response.text)
            assert response.json()["detail"].endswith(".")


def test_cli_gradebook_reads_the_database(
    service: InProcessService,
    book: dict[str, Any],
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`autograder gradebook`, in this process (its settings are the service's)."""
    out = tmp_path / "book.csv"
    assert cli_main(["gradebook", "--course", book["course"], "--output", str(out)]) == 0
    assert list(csv.reader(io.StringIO(out.read_text()))) == fetch(service, book["course"])
    capsys.readouterr()
    assert cli_main(["gradebook", "--course", book["course"], "--format", "long"]) == 0
    long = capsys.readouterr().out
    assert list(csv.reader(io.StringIO(long))) == fetch(service, book["course"], format="long")
    assert cli_main(["gradebook", "--course", "nope"]) == 2
    assert "no course" in capsys.readouterr().err


def test_counted_submission_with_real_grading(service: InProcessService) -> None:
    course = clone_course(
        service, "gb-real", {"alice": "student", "tina": "ta", "ivan": "instructor"}
    )
    good = submit(service, "alice", course, hw1_source()).json()["id"]
    good_body = wait_graded(service, "alice", good)
    worse = submit(service, "alice", course, hw1_source(label_smoothing=False)).json()["id"]
    worse_body = wait_graded(service, "alice", worse)
    assert good_body["score"] > worse_body["score"] > 0, dump([good_body, worse_body])
    with service.client("alice") as c:
        assert c.get(f"/api/v1/submissions/{good}").json()["counts"] is False
        assert c.get(f"/api/v1/submissions/{worse}").json()["counts"] is True
    row = as_dicts(fetch(service, course))[0]
    assert float(row[HW1]) == pytest.approx(worse_body["score"])
    patch_assignment(service, course, counting_policy="best")
    row = as_dicts(fetch(service, course))[0]
    assert float(row[HW1]) == pytest.approx(good_body["score"])
    per_exercise = {e["slug"]: e["score"] for e in good_body["exercises"]}
    assert float(row[f"{HW1}/label_smoothing_ce"]) == pytest.approx(
        per_exercise["label_smoothing_ce"]
    )
