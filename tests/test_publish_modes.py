"""Publishing in the other deployments: the embedded one (`autograder up`: SQLite, the
filesystem broker, the folder blob store) publishes a scaffolded assignment and grades
it at once; a distributed one whose self-check cannot finish in time answers 503 and
publishes nothing, even when a worker runs the check later."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.models import AssignmentVersion
from core.publication_models import Publication
from graders.authoring.bundle import pack
from graders.authoring.scaffold import new_assignment
from tests.support.stack import Stack, distributed_stack
from tests.support.staffing import clone_course, stack_db, wait_graded


def _publish(stack: Stack, user: str, course: str, data: bytes) -> tuple[int, dict[str, Any]]:
    with stack.client(user) as c:
        c.timeout = 600
        response = c.post(f"/api/v1/courses/{course}/assignments",
                          files={"bundle": ("scaffold.tar.gz", data)})
    return response.status_code, response.json()


def test_publish_works_in_the_embedded_mode(embedded: Stack, tmp_path: Path) -> None:
    course = clone_course(embedded, "pub-embedded", {"emb-ivan": "instructor",
                                                     "emb-tina": "ta",
                                                     "emb-alice": "student"}, assignments=())
    folder = new_assignment("pub-scaffold", tmp_path / "pub-scaffold")
    status, body = _publish(embedded, "emb-ivan", course, pack(folder))
    assert status == 201, body
    assert body["slug"] == "pub-scaffold" and body["new_version"] is True
    rows = {r["variant"]: r for r in body["report"]}
    assert rows["solution"]["ok"] and rows["starter"]["total"] == 0
    assert any(v.startswith("variant ") for v in rows)

    with embedded.client("emb-alice") as c:
        starter = c.get(f"/api/v1/courses/{course}/assignments/pub-scaffold/starter")
        assert starter.status_code == 200
        assert starter.content == (folder / "notebooks" / "starter.ipynb").read_bytes()
        response = c.post(f"/api/v1/courses/{course}/assignments/pub-scaffold/submissions",
                          files={"file": ("answer.ipynb",
                                          (folder / "notebooks" / "solution.ipynb")
                                          .read_bytes())})
    assert response.status_code == 202, response.text
    view = wait_graded(embedded, "emb-alice", response.json()["id"], staff="emb-tina")
    assert view["status"] == "graded" and view["score"] == view["max_score"] > 0, view


@pytest.fixture
def gpu_only_stack(tmp_path: Path) -> Iterator[Stack]:
    """A distributed stack whose only worker consumes the gpu queue: no self-check runs."""
    stack = distributed_stack(tmp_path / "stack", workers=0,
                              extra_env={"AUTOGRADER_PUBLISH_TIMEOUT_SECONDS": "3"})
    try:
        stack.start_worker(queues="gpu")
        yield stack
    finally:
        stack.stop()


def test_a_self_check_that_does_not_finish_in_time_publishes_nothing(
        gpu_only_stack: Stack, tmp_path: Path) -> None:
    stack = gpu_only_stack
    course = clone_course(stack, "pub-late", {"late-ivan": "instructor",
                                              "late-alice": "student"}, assignments=())
    folder = new_assignment("pub-late", tmp_path / "pub-late")
    started = time.monotonic()
    status, body = _publish(stack, "late-ivan", course, pack(folder))
    assert status == 503, body
    assert "did not finish within 3 s" in str(body["detail"])
    assert time.monotonic() - started < 60
    # A worker of the cpu queue comes along later and takes the message: the row
    # was given up, so it does nothing, and nothing is ever published.
    stack.start_worker("cpu-worker", queues="cpu")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "nothing to do" not in stack.log("cpu-worker"):
        time.sleep(0.5)
    assert "nothing to do" in stack.log("cpu-worker"), stack.log("cpu-worker")[-2000:]
    with stack_db(stack) as db:
        statuses = list(db.scalars(select(Publication.status)))
        versions = list(db.scalars(select(AssignmentVersion.slug)))
    assert statuses == ["abandoned"] and "pub-late" not in versions
    with stack.client("late-alice") as c:
        assert c.get(f"/api/v1/courses/{course}/assignments").json() == []
