"""Jobs: a task delivered twice grades once; an Idempotency-Key returns the same submission."""

from __future__ import annotations

import time

from core.queue import GRADE_TASK, make_celery
from core.settings import Settings
from tests.support.notebooks import course_notebook
from tests.support.paths import HW1
from tests.support.stack import Stack


def test_same_idempotency_key_returns_the_same_submission(any_stack: Stack) -> None:
    nb = course_notebook(HW1, "solution")
    key = {"Idempotency-Key": f"upload-{time.time()}"}
    first = any_stack.submit("alice", HW1, "a.ipynb", nb, headers=key)
    second = any_stack.submit("alice", HW1, "a.ipynb", nb, headers=key)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    # Another user with the same key gets their own submission.
    other = any_stack.submit("bob", HW1, "a.ipynb", nb, headers=key)
    assert other.json()["id"] != first.json()["id"]


def test_a_task_delivered_twice_grades_once(pg_stack: Stack) -> None:
    response = pg_stack.submit("alice", HW1, "a.ipynb", course_notebook(HW1, "solution"))
    submission_id = response.json()["id"]
    with pg_stack.client("tina") as c:
        job_id = c.get(f"/api/v1/submissions/{submission_id}/jobs").json()[0]["id"]
    app = make_celery(Settings(broker_url=pg_stack.env["AUTOGRADER_BROKER_URL"]))
    for _ in range(3):
        app.send_task(GRADE_TASK, args=[job_id], queue="cpu")
    body = pg_stack.wait_graded("alice", submission_id)
    assert body["score"] == body["max_score"]
    # Every duplicate is delivered, and each finds the job taken or finished.
    skipped = f"job {job_id}: nothing to do (already taken or finished)"
    deadline = time.monotonic() + 60
    while pg_stack.log("worker").count(skipped) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pg_stack.log("worker").count(skipped) == 3, pg_stack.log("worker")[-3000:]
    with pg_stack.client("tina") as c:
        jobs = c.get(f"/api/v1/submissions/{submission_id}/jobs").json()
    assert len(jobs) == 1
    assert jobs[0]["attempt"] == 1
    tests = sum(len(ex["tests"]) for ex in body["exercises"])
    with pg_stack.client("tina") as c:
        staff_view = c.get(f"/api/v1/submissions/{submission_id}").json()
    assert sum(len(ex["tests"]) for ex in staff_view["exercises"]) >= tests
    assert staff_view["score"] == body["score"]
