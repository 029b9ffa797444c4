"""Routing by live capacity, in-process on a SQLite database of its own: heartbeats and
their expiry, the queue a GPU job gets, what the sweeper moves and where, and what a
waiting student reads. (tests/test_distributed.py shows the same with real workers.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core import capacity
from core.db import make_engine
from core.models import Assignment, Base, Course, Exercise, GradingJob, Submission, User, utcnow
from core.settings import get_settings

pytestmark = pytest.mark.fast


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    monkeypatch.setenv("AUTOGRADER_WORKER_EXPIRY_SECONDS", "20")
    monkeypatch.delenv("AUTOGRADER_GPU_FALLBACK_TO_CPU", raising=False)
    get_settings.cache_clear()
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()
    get_settings.cache_clear()


def queued_job(session: Session, queue: str) -> GradingJob:
    course = Course(slug=f"c{queue}", title="c")
    session.add(course)
    session.flush()
    assignment = Assignment(
        course_id=course.id,
        slug="a",
        title="a",
        exercises=[Exercise(slug="e", kind="function", max_score=1, device="gpu")],
    )
    user = User(name=f"u{queue}")
    session.add_all([assignment, user])
    session.flush()
    sub = Submission(
        assignment_id=assignment.id,
        user_id=user.id,
        sha256="0" * 64,
        filename="x.py",
        file_kind="python",
        size_bytes=1,
    )
    session.add(sub)
    session.flush()
    job = GradingJob(submission_id=sub.id, queue=queue, status="queued")
    session.add(job)
    session.commit()
    return job


def test_heartbeats_expire_and_name_the_queues_without_consumers(session: Session) -> None:
    assert capacity.queues_without_consumers(session) == ["cpu", "gpu"]
    capacity.announce(session, "w1", "h", ["cpu"], 2, "cpu")
    capacity.announce(session, "w1", "h", ["cpu"], 2, "cpu")  # a second beat: one row
    capacity.announce(
        session, "g1", "h", ["gpu"], 1, "cuda x1", now=utcnow() - timedelta(seconds=30)
    )  # heard of 30 s ago: gone
    assert [w.id for w in capacity.live_workers(session)] == ["w1"]
    assert capacity.queues_without_consumers(session) == ["gpu"]
    assert capacity.capacity(session)["slots"] == {"cpu": 2, "gpu": 0}
    capacity.announce(session, "g1", "h", ["gpu"], 1, "cuda x1")
    assert capacity.queues_without_consumers(session) == []
    capacity.retire(session, "g1")
    assert capacity.queues_without_consumers(session) == ["gpu"]


def test_gpu_jobs_route_to_gpu_only_while_a_gpu_worker_lives(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert capacity.route(session, wants_gpu=False) == "cpu"
    assert capacity.route(session, wants_gpu=True) == "cpu"  # nobody on gpu: fall back
    capacity.announce(session, "g1", "h", ["gpu"], 1, "cuda x1")
    assert capacity.route(session, wants_gpu=True) == "gpu"
    capacity.retire(session, "g1")
    monkeypatch.setenv("AUTOGRADER_GPU_FALLBACK_TO_CPU", "false")
    get_settings.cache_clear()
    assert capacity.route(session, wants_gpu=True) == "gpu"  # waits for one


def test_sweeper_moves_jobs_off_queues_nobody_consumes(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_gpu = queued_job(session, "gpu")
    assert capacity.reroute(session) == []  # no worker at all: nowhere better
    assert "Waiting for a GPU worker" in (capacity.waiting_note(session, on_gpu) or "")
    capacity.announce(session, "w1", "h", ["cpu"], 1, "cpu")
    monkeypatch.setenv("AUTOGRADER_GPU_FALLBACK_TO_CPU", "false")
    get_settings.cache_clear()
    assert capacity.reroute(session) == []  # no fallback: it keeps waiting for a GPU
    monkeypatch.delenv("AUTOGRADER_GPU_FALLBACK_TO_CPU")
    get_settings.cache_clear()
    moved = capacity.reroute(session)
    assert [j.id for j in moved] == [on_gpu.id]
    session.refresh(on_gpu)
    assert on_gpu.queue == "cpu" and on_gpu.sent_at is None
    assert capacity.waiting_note(session, on_gpu) is None

    on_cpu = queued_job(session, "cpu")
    capacity.retire(session, "w1")
    capacity.announce(session, "g1", "h", ["gpu"], 1, "cuda x1")  # GPU workers only
    assert [j.id for j in capacity.reroute(session)] == [on_gpu.id, on_cpu.id]
    session.refresh(on_cpu)
    assert on_cpu.queue == "gpu"
