"""Submission caps hold exactly under concurrency, through the real API.

Each upload's body is sent but for its last bytes; once every request is waiting on
its body, the last bytes of all of them go out at once, so the requests reach the cap
check together (a count query without a lock lets several pass). Exactly one upload
at the cap's edge is accepted, the others are answered 429 with a sentence: with two
uploads and with ten, for the total cap and the per-day cap, on PostgreSQL and on
SQLite (`autograder up`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from core.models import Assignment, Course, Enrollment, Submission
from tests.support.paths import HW1
from tests.support.stack import Stack
from tests.support.staffing import clone_course, hw1_source, patch_assignment, stack_db, submit


def new_course(stack: Stack, name: str, student: str, **caps: Any) -> str:
    """A course of its own with `student` and a TA of its own (the embedded stack's
    demo users are named differently), hw1 capped as given."""
    course = f"{name}-{uuid.uuid4().hex[:6]}"
    clone_course(stack, course, {student: "student", f"ta-{course}": "ta"})
    patch_assignment(stack, course, user=f"ta-{course}", **caps)
    return course


def held_body(
    data: bytes, boundary: str, release: threading.Event, ready: threading.Semaphore
) -> Iterator[bytes]:
    """A multipart body whose last bytes wait for `release` (sent chunked)."""
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="hw1.py"\r\nContent-Type: text/x-python\r\n\r\n'
    ).encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    yield body[:-10]
    ready.release()
    release.wait(30)
    yield body[-10:]


def race(stack: Stack, user: str, course: str, uploads: int) -> list[httpx.Response]:
    """`uploads` uploads by `user`, their last bytes released together."""
    release = threading.Event()
    ready = threading.Semaphore(0)
    url = f"{stack.base_url}/api/v1/courses/{course}/assignments/{HW1}/submissions"

    def one(k: int) -> httpx.Response:
        boundary = uuid.uuid4().hex
        data = hw1_source() + f"\n# upload {k}\n".encode()
        with httpx.Client(timeout=60) as client:
            return client.post(
                url,
                content=held_body(data, boundary, release, ready),
                headers={
                    "Authorization": f"Bearer {stack.tokens[user]}",
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                },
            )

    with ThreadPoolExecutor(uploads) as pool:
        futures = [pool.submit(one, k) for k in range(uploads)]
        for _ in range(uploads):
            assert ready.acquire(timeout=30), "a request did not start"
        time.sleep(0.3)  # every request is now inside the server, waiting on its body
        release.set()
        return [f.result() for f in futures]


def stored(stack: Stack, course: str) -> int:
    """Submissions to the course's hw1 stored in the database."""
    with stack_db(stack) as db:
        course_id = db.scalar(select(Course.id).where(Course.slug == course))
        assignment_id = db.scalar(
            select(Assignment.id).where(Assignment.course_id == course_id, Assignment.slug == HW1)
        )
        users = select(Enrollment.user_id).where(Enrollment.course_id == course_id)
        return int(
            db.scalar(
                select(func.count())
                .select_from(Submission)
                .where(Submission.assignment_id == assignment_id, Submission.user_id.in_(users))
            )
            or 0
        )


def exactly_one_accepted(responses: list[httpx.Response], phrase: str) -> None:
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] + [429] * (len(responses) - 1), [
        (r.status_code, r.text[:200]) for r in responses
    ]
    for r in responses:
        if r.status_code == 429:
            assert phrase in r.json()["detail"], r.text


@pytest.mark.parametrize("uploads", [2, 10])
def test_uploads_at_the_total_caps_edge_accept_exactly_one(any_stack: Stack, uploads: int) -> None:
    student = f"racer{uploads}-{uuid.uuid4().hex[:6]}"
    course = new_course(any_stack, f"caps-race-{uploads}", student, cap_total=3)
    for _ in range(2):  # one left below the cap
        assert submit(any_stack, student, course, hw1_source()).status_code == 202
    exactly_one_accepted(race(any_stack, student, course, uploads), "all 3 submissions")
    assert stored(any_stack, course) == 3
    # Full: a lone upload is refused too, and nothing of it is kept.
    assert submit(any_stack, student, course, hw1_source()).status_code == 429
    assert stored(any_stack, course) == 3


def test_uploads_at_the_daily_caps_edge_accept_exactly_one(any_stack: Stack) -> None:
    student = f"dayracer-{uuid.uuid4().hex[:6]}"
    course = new_course(any_stack, "caps-race-day", student, cap_per_day=1)
    exactly_one_accepted(race(any_stack, student, course, 10), "in 24 hours")
    assert stored(any_stack, course) == 1


def test_staff_are_not_capped_and_not_serialized(pg_stack: Stack) -> None:
    """Staff try assignments out without a cap: all of their racing uploads pass."""
    course = new_course(pg_stack, "caps-race-staff", "nobody", cap_total=1)
    responses = race(pg_stack, f"ta-{course}", course, 4)
    assert [r.status_code for r in responses] == [202] * 4, [r.text for r in responses]
