"""Helpers for the course-running tests: courses of their own inside a running service
(so deadlines, caps and regrades of one test never touch another's), users with tokens,
rows written straight into the service's database, small submissions that grade fast.

The service is a `Deployment`: real processes (tests/support/stack.py: Stack) or the app
in this process (tests/support/inprocess.py: InProcessService)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

import httpx
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.accounts import enroll, get_or_create_user, issue_token
from core.db import make_engine, session_scope
from core.models import Assignment, Course, Exercise, Submission, User
from tests.support.paths import ALTERNATIVES, HW1


class Deployment(Protocol):
    """What these helpers use of a running service."""

    env: dict[str, str]
    tokens: dict[str, str]

    def client(self, user: str | None = None) -> httpx.Client: ...

    def log(self, name: str) -> str: ...


@lru_cache
def _engine(url: str) -> Engine:
    return make_engine(url)


@contextmanager
def stack_db(stack: Deployment) -> Iterator[Session]:
    """A session on the stack's own database (committed on success)."""
    url = stack.env.get("AUTOGRADER_DATABASE_URL") or (
        f"sqlite:///{stack.env['AUTOGRADER_DATA_DIR']}/autograder.db"
    )
    with session_scope(_engine(url)) as session:
        yield session


def clone_course(
    stack: Deployment, slug: str, members: dict[str, str], assignments: tuple[str, ...] = (HW1,)
) -> str:
    """A course `slug` with copies of the bundled course's assignments (graded from the
    same reference folders; no caps), `members` {user name: role} enrolled in it. Users
    that do not exist yet are created and their token put in stack.tokens."""
    with stack_db(stack) as db:
        source = db.scalar(select(Course).where(Course.slug == "dlp"))
        assert source is not None
        course = Course(slug=slug, title=f"Course {slug}")
        db.add(course)
        db.flush()
        for a in db.scalars(
            select(Assignment).where(
                Assignment.course_id == source.id, Assignment.slug.in_(assignments)
            )
        ):
            copy = Assignment(
                course_id=course.id,
                slug=a.slug,
                title=a.title,
                position=a.position,
                due_at=a.due_at,
                version=a.version,
                max_score=a.max_score,
                late_policy=dict(a.late_policy or {}),
                counting_policy="last",
                cap_total=None,
                cap_per_day=None,
            )
            copy.exercises = [
                Exercise(
                    slug=e.slug,
                    kind=e.kind,
                    max_score=e.max_score,
                    position=e.position,
                    device=e.device,
                )
                for e in a.exercises
            ]
            db.add(copy)
        db.flush()
        for name, role in members.items():
            user = get_or_create_user(db, name)
            enroll(db, user, course, role)
            if name not in stack.tokens:
                stack.tokens[name] = issue_token(db, user)
    return slug


def submit(
    stack: Deployment,
    user: str,
    course: str,
    data: bytes,
    filename: str = "hw1.py",
    assignment: str = HW1,
) -> Any:
    with stack.client(user) as c:
        return c.post(
            f"/api/v1/courses/{course}/assignments/{assignment}/submissions",
            files={"file": (filename, data)},
        )


def hw1_source(label_smoothing: bool = True, early_stopping: bool = True) -> bytes:
    """A .py answer to hw1's function exercises: right ones from the course's own
    alternatives, or a wrong one where asked for."""
    parts = []
    if label_smoothing:
        parts.append((ALTERNATIVES / "label_smoothing_ce__torch_builtin.py").read_text())
    else:
        parts.append(
            "def label_smoothing_ce(logits, target, smoothing):\n"
            "    return logits.sum() * 0 + 123.0\n"
        )
    if early_stopping:
        parts.append((ALTERNATIVES / "early_stopping_epoch__while_loop.py").read_text())
    return ("# %%\n" + "\n# %%\n".join(parts)).encode()


def wait_graded(
    stack: Deployment,
    user: str,
    submission_id: str,
    timeout: float = 180,
    jobs: int = 1,
    staff: str = "tina",
) -> dict[str, Any]:
    """Wait until the submission has `jobs` jobs, all final; returns `user`'s view."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    with stack.client(user) as c, stack.client(staff) as s:
        while time.monotonic() < deadline:
            history = s.get(f"/api/v1/submissions/{submission_id}/history")
            if history.status_code == 200:
                body = {"history": history.json()}
                if len(body["history"]) >= jobs and all(
                    e["status"] in ("graded", "failed") for e in body["history"]
                ):
                    return dict(c.get(f"/api/v1/submissions/{submission_id}").json())
            time.sleep(0.2)
    raise TimeoutError(
        f"submission {submission_id} not graded in {timeout} s: {body}\n"
        f"worker log:\n{stack.log('worker')[-3000:]}"
    )


def wait_batch(stack: Deployment, batch_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    with stack.client("tina") as c:
        while time.monotonic() < deadline:
            body = c.get(f"/api/v1/regrades/{batch_id}").json()
            if body.get("status") == "done":
                return body
            time.sleep(0.5)
    raise TimeoutError(f"batch {batch_id} not done in {timeout} s: {body}")


def patch_assignment(
    stack: Deployment, course: str, user: str = "tina", assignment: str = HW1, **fields: Any
) -> dict[str, Any]:
    with stack.client(user) as c:
        response = c.patch(f"/api/v1/courses/{course}/assignments/{assignment}", json=fields)
    assert response.status_code == 200, response.text
    return dict(response.json())


def iso(value: datetime) -> str:
    return value.isoformat()


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def user_id(stack: Deployment, name: str) -> int:
    with stack_db(stack) as db:
        uid = db.scalar(select(User.id).where(User.name == name))
    assert uid is not None
    return int(uid)


def submission_row(stack: Deployment, submission_id: str) -> Submission:
    with stack_db(stack) as db:
        row = db.get(Submission, submission_id)
        assert row is not None
        return row
