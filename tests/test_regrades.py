"""Regrades: one exercise of an assignment, a whole assignment of 200 submissions, as
batches with progress; every regrade a new job, the old ones kept, each submission's
history showing the score before and after."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core.models import Assignment, Course, GradingJob, Submission
from tests.support.paths import HW1
from tests.support.stack import Stack, dump
from tests.support.staffing import (
    clone_course,
    hw1_source,
    iso,
    patch_assignment,
    stack_db,
    submit,
    wait_batch,
    wait_graded,
)

STAFF = {"tina": "ta", "ivan": "instructor"}


def test_regrade_one_exercise_keeps_the_others(pg_stack: Stack) -> None:
    course = clone_course(pg_stack, "rg-exercise", {"alice": "student", "bob": "student", **STAFF})
    first = submit(pg_stack, "alice", course, hw1_source(label_smoothing=False)).json()["id"]
    second = submit(pg_stack, "bob", course, hw1_source()).json()["id"]
    before = {
        sid: wait_graded(pg_stack, user, sid) for user, sid in (("alice", first), ("bob", second))
    }
    url = f"/api/v1/courses/{course}/assignments/{HW1}/regrade"
    with pg_stack.client("tina") as c:
        assert c.post(url, json={"exercise": "nope"}).status_code == 422
        response = c.post(url, json={"exercise": "early_stopping_epoch", "reason": "fix"})
        assert response.status_code == 202, response.text
        created = response.json()
        # A model exercise is graded from model files only: none here.
        empty = c.post(url, json={"exercise": "digits-classifier"}).json()
    assert created["total"] == 2 and created["status"] == "running"
    assert empty["total"] == 0 and empty["status"] == "done"
    progress = wait_batch(pg_stack, created["batch_id"])
    assert (progress["total"], progress["done"], progress["failed"]) == (2, 2, 0)
    for user, sid in (("alice", first), ("bob", second)):
        after = wait_graded(pg_stack, user, sid, jobs=2)
        old = before[sid]
        assert after["score"] == pytest.approx(old["score"]), dump([old, after])
        assert [e["slug"] for e in after["exercises"]] == [e["slug"] for e in old["exercises"]]
        with pg_stack.client("tina") as c:
            jobs = c.get(f"/api/v1/submissions/{sid}/jobs").json()
            history = c.get(f"/api/v1/submissions/{sid}/history").json()
        assert len(jobs) == 2 and jobs[1]["exercises"] == ["early_stopping_epoch"]
        assert jobs[0]["status"] == "graded"  # the old job is kept
        assert history[1]["reason"] == "fix" and history[1]["requested_by"] == "tina"
        assert history[1]["batch_id"] == created["batch_id"]
        assert history[1]["score_before"] == pytest.approx(old["score"])
        assert history[1]["score_after"] == pytest.approx(after["score"])
    # The one student's own view of a single-submission regrade of one exercise.
    with pg_stack.client("ivan") as c:
        response = c.post(
            f"/api/v1/submissions/{first}/regrade", json={"exercise": "label_smoothing_ce"}
        )
    assert response.status_code == 202
    wait_graded(pg_stack, "alice", first, jobs=3)
    with pg_stack.client("alice") as c:
        history = c.get(f"/api/v1/submissions/{first}/history").json()
    assert [h["requested_by"] for h in history] == [None, "tina", "ivan"]
    assert [h["exercises"] for h in history] == [
        None,
        ["early_stopping_epoch"],
        ["label_smoothing_ce"],
    ]


def _graded_count(stack: Stack, course: str) -> dict[str, int]:
    with stack_db(stack) as db:
        rows = db.execute(
            select(GradingJob.status, func.count())
            .join(Submission, Submission.id == GradingJob.submission_id)
            .join(Assignment, Assignment.id == Submission.assignment_id)
            .join(Course, Course.id == Assignment.course_id)
            .where(Course.slug == course)
            .group_by(GradingJob.status)
        ).all()
    return {status: n for status, n in rows}


def test_regrade_a_whole_assignment_of_200_submissions(pg_stack: Stack) -> None:
    course = clone_course(pg_stack, "rg-bulk", dict(STAFF))
    roster = "id,name,email\n" + "".join(
        f"bulk{i:02d},Bulk Student {i},bulk{i}@example.org\n" for i in range(20)
    )
    with pg_stack.client("ivan") as c:
        response = c.post(
            f"/api/v1/courses/{course}/roster", files={"file": ("roster.csv", roster.encode())}
        )
    assert response.status_code == 200, response.text
    for row in response.json()["rows"]:
        assert row["status"] == "created" and row["token"]
        pg_stack.tokens[row["id"]] = row["token"]
    patch_assignment(
        pg_stack,
        course,
        due_at=iso(datetime.now(UTC) + timedelta(days=1)),
        late_policy={"kind": "percent_per_day", "percent_per_day": 10},
    )
    # Only early_stopping_epoch is answered: grades fast, a score of its points.
    source = hw1_source(label_smoothing=False)
    ids = []
    for i in range(200):
        response = submit(pg_stack, f"bulk{i % 20:02d}", course, source)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    deadline = time.monotonic() + 600
    while _graded_count(pg_stack, course).get("graded", 0) < 200:
        assert time.monotonic() < deadline, _graded_count(pg_stack, course)
        time.sleep(1)
    with pg_stack.client("tina") as c:
        first = c.get(f"/api/v1/submissions/{ids[0]}").json()
    old = first["score"]
    assert old > 0, dump(first)

    # The deadline moves an hour into the past: the regrade applies a day's 10 %.
    patch_assignment(pg_stack, course, due_at=iso(datetime.now(UTC) - timedelta(hours=1)))
    with pg_stack.client("ivan") as c:
        response = c.post(
            f"/api/v1/courses/{course}/assignments/{HW1}/regrade",
            json={"reason": "deadline was wrong"},
        )
    assert response.status_code == 202, response.text
    batch = response.json()
    assert batch["total"] == 200
    progress = wait_batch(pg_stack, batch["batch_id"], timeout=600)
    assert (progress["done"], progress["failed"], progress["status"]) == (200, 0, "done")

    with stack_db(pg_stack) as db:
        jobs_per_submission = dict(
            db.execute(
                select(GradingJob.submission_id, func.count())
                .where(GradingJob.submission_id.in_(ids))
                .group_by(GradingJob.submission_id)
            ).all()
        )
        new_jobs = db.scalar(
            select(func.count())
            .select_from(GradingJob)
            .where(GradingJob.batch_id == batch["batch_id"], GradingJob.status == "graded")
        )
    assert set(jobs_per_submission.values()) == {2} and len(jobs_per_submission) == 200
    assert new_jobs == 200
    with pg_stack.client("tina") as c:
        for sid in ids:
            history = c.get(f"/api/v1/submissions/{sid}/history").json()
            assert [h["status"] for h in history] == ["graded", "graded"], dump(history)
            assert history[0]["score_before"] is None
            assert history[0]["score_after"] == pytest.approx(old)
            assert history[1]["score_before"] == pytest.approx(old)
            assert history[1]["score_after"] == pytest.approx(old * 0.9)
            assert history[1]["reason"] == "deadline was wrong"
            assert history[1]["requested_by"] == "ivan"
            assert history[1]["current"] and not history[0]["current"]
    with pg_stack.client("bulk03") as c:
        mine = c.get(f"/api/v1/submissions/{ids[3]}/history")
        theirs = c.get(f"/api/v1/submissions/{ids[4]}/history")
    assert mine.status_code == 200 and len(mine.json()) == 2
    assert theirs.status_code == 404
    with pg_stack.client("ivan") as c:
        audit = c.get(f"/api/v1/courses/{course}/audit").json()
    regrade = next(e for e in audit if e["action"] == "regrade_assignment")
    assert regrade["actor"] == "ivan" and regrade["details"]["total"] == 200
    assert regrade["details"]["batch_id"] == batch["batch_id"]
    assert any(e["action"] == "import_roster" and e["details"]["created"] == 20 for e in audit)
