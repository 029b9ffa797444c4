"""A submission's way through the service, in-process (fast tier): the upload commits a
queued job and sends it once; the worker's code grades it under a claim; a second
delivery does nothing; a service failure is retried and then given up with a sentence;
a broker that is down loses no upload, and the sweeper sends what waits, but not a job
whose upload is still about to send it. The queue is tests/support/inprocess.py's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from core.job_writes import JobInput
from core.jobs import sweep
from core.models import GradingJob, utcnow
from core.queue import GRADE_TASK
from tests.support.inprocess import InProcessService
from tests.support.paths import HW1
from tests.support.stack import dump
from tests.support.staffing import clone_course, hw1_source, submit
from worker import grading
from worker.grading import grade_delivered

pytestmark = pytest.mark.fast

COURSE = "flow"


@pytest.fixture(scope="module")
def course(service: InProcessService) -> str:
    return clone_course(
        service, COURSE, {"alice": "student", "bob": "student", "tina": "ta", "ivan": "instructor"}
    )


@pytest.fixture
def held(service: InProcessService) -> Iterator[InProcessService]:
    """Jobs are sent but wait; the test grades them (or not). Nothing leaks out."""
    with service.jobs_held():
        yield service


def job_rows(service: InProcessService, submission_id: str) -> list[GradingJob]:
    with service.db() as db:
        return list(
            db.scalars(
                select(GradingJob)
                .where(GradingJob.submission_id == submission_id)
                .order_by(GradingJob.created_at)
            )
        )


def read(service: InProcessService, user: str, path: str) -> Any:
    response = service.client(user).get(path)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_upload_is_one_queued_job_sent_once_then_graded(
    held: InProcessService, course: str
) -> None:
    response = submit(held, "alice", course, hw1_source())
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["status"] == "queued" and created["file_kind"] == "python"
    [job] = job_rows(held, created["id"])
    assert job.status == "queued" and job.attempt == 0 and job.sent_at is not None
    waiting = held.queue.waiting()
    assert [(t.name, t.args, t.queue) for t in waiting] == [(GRADE_TASK, (job.id,), job.queue)]
    assert read(held, "alice", f"/api/v1/submissions/{created['id']}")["status"] == "queued"

    assert held.grade_pending() == 1
    body = read(held, "alice", f"/api/v1/submissions/{created['id']}")
    assert body["status"] == "graded" and body["score"] == pytest.approx(body["max_score"])
    [job] = read(held, "tina", f"/api/v1/submissions/{created['id']}/jobs")
    assert (job["status"], job["attempt"]) == ("graded", 1)
    # Isolation "none": a plain child process, and the job record says so.
    assert job["isolation"].startswith("process"), dump(job)
    assert job["grader_version"] and job["assignment_version"] and job["seeds"]


def test_a_second_delivery_of_a_graded_job_does_nothing(
    held: InProcessService, course: str
) -> None:
    sid = submit(held, "bob", course, hw1_source()).json()["id"]
    [task] = held.queue.waiting()
    held.grade_pending()
    before = read(held, "tina", f"/api/v1/submissions/{sid}")
    assert grade_delivered(str(task.args[0]), device="cpu") == "skipped"
    assert grade_delivered(str(task.args[0]), device="cpu") == "skipped"
    [job] = read(held, "tina", f"/api/v1/submissions/{sid}/jobs")
    assert job["attempt"] == 1
    assert read(held, "tina", f"/api/v1/submissions/{sid}") == before


def test_the_same_idempotency_key_is_the_same_submission(
    held: InProcessService, course: str
) -> None:
    key = {"Idempotency-Key": f"upload-{time.time()}"}
    url = f"/api/v1/courses/{course}/assignments/{HW1}/submissions"
    files = {"file": ("hw1.py", hw1_source())}
    first = held.client("alice").post(url, files=files, headers=key)
    second = held.client("alice").post(url, files=files, headers=key)
    other = held.client("bob").post(url, files=files, headers=key)
    assert first.status_code == second.status_code == other.status_code == 202
    assert first.json()["id"] == second.json()["id"] != other.json()["id"]
    assert len(job_rows(held, first.json()["id"])) == 1
    assert len(held.queue.waiting()) == 2  # one job each for alice and bob


def test_a_failing_grader_is_retried_then_given_up_with_a_sentence(
    held: InProcessService, course: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(job: JobInput, device: str = "cpu") -> Any:
        raise OSError("the disk went away")

    monkeypatch.setattr(grading, "run_job", broken)
    sid = submit(held, "alice", course, hw1_source()).json()["id"]
    # Each failed attempt hands the job back and sends it again, up to max_attempts (3).
    assert held.grade_pending() == 3
    [job] = job_rows(held, sid)
    assert (job.status, job.attempt) == ("failed", 3)
    assert job.error and "gave up after 3 attempts" in job.error and "disk went away" in job.error
    body = read(held, "alice", f"/api/v1/submissions/{sid}")
    assert body["status"] == "failed" and body["score"] is None
    assert "gave up after 3 attempts" in (body["error"] or ""), dump(body)


def test_a_broker_that_is_down_loses_no_upload_and_the_sweeper_sends_it_later(
    held: InProcessService, course: str
) -> None:
    held.queue.reachable = False
    try:
        response = submit(held, "alice", course, hw1_source())
    finally:
        held.queue.reachable = True
    assert response.status_code == 202, response.text
    [job] = job_rows(held, response.json()["id"])
    assert job.status == "queued" and job.sent_at is None
    assert held.queue.waiting() == []

    with held.db() as db:
        # Just created: its upload may still be about to send it, so the sweeper waits.
        assert sweep(db, now=job.created_at + timedelta(seconds=0.5))["resent"] == 0
        assert sweep(db, now=utcnow() + timedelta(seconds=5))["resent"] == 1
    [task] = held.queue.waiting()
    assert task.args == (job.id,)
    held.grade_pending()
    assert read(held, "alice", f"/api/v1/submissions/{job.submission_id}")["status"] == "graded"


def test_a_regrade_is_a_new_job_and_the_history_shows_before_and_after(
    service: InProcessService, course: str
) -> None:
    sid = submit(service, "alice", course, hw1_source(label_smoothing=False)).json()["id"]
    first = read(service, "alice", f"/api/v1/submissions/{sid}")
    assert first["status"] == "graded" and 0 < first["score"] < first["max_score"]
    staff = service.client("tina")
    assert (
        staff.post(f"/api/v1/submissions/{sid}/regrade", json={"reason": "again"}).status_code
        == 202
    )
    assert (
        service.client("alice").post(f"/api/v1/submissions/{sid}/regrade", json={}).status_code
        == 403
    )
    history = read(service, "alice", f"/api/v1/submissions/{sid}/history")
    assert [h["reason"] for h in history] == ["submission", "again"]
    assert history[1]["score_before"] == pytest.approx(first["score"])
    assert history[1]["score_after"] == pytest.approx(first["score"])
    assert history[-1]["current"] is True
    assert len(job_rows(service, sid)) == 2
