"""Publishing in the other deployments: the embedded one (`autograder up`: SQLite, the
filesystem broker, the folder blob store) publishes a scaffolded assignment and grades
it at once; a distributed one whose self-check cannot finish in time answers 503 and
publishes nothing, even when a worker runs the check later; and there, an API process
and a worker that share no folder (each its own data folder, the worker no course
folder) publish and grade a new assignment."""

from __future__ import annotations

import subprocess
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
from tests.support.paths import BIN, ROOT
from tests.support.stack import Stack, distributed_stack, free_port, wait_http
from tests.support.staffing import clone_course, stack_db, wait_graded


def _publish(stack: Stack, user: str, course: str, data: bytes) -> tuple[int, dict[str, Any]]:
    with stack.client(user) as c:
        c.timeout = 600
        response = c.post(
            f"/api/v1/courses/{course}/assignments", files={"bundle": ("scaffold.tar.gz", data)}
        )
    return response.status_code, response.json()


def test_publish_works_in_the_embedded_mode(embedded: Stack, tmp_path: Path) -> None:
    course = clone_course(
        embedded,
        "pub-embedded",
        {"emb-ivan": "instructor", "emb-tina": "ta", "emb-alice": "student"},
        assignments=(),
    )
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
        response = c.post(
            f"/api/v1/courses/{course}/assignments/pub-scaffold/submissions",
            files={
                "file": ("answer.ipynb", (folder / "notebooks" / "solution.ipynb").read_bytes())
            },
        )
    assert response.status_code == 202, response.text
    view = wait_graded(embedded, "emb-alice", response.json()["id"], staff="emb-tina")
    assert view["status"] == "graded" and view["score"] == view["max_score"] > 0, view


@pytest.fixture
def gpu_only_stack(tmp_path: Path) -> Iterator[Stack]:
    """A distributed stack whose only worker consumes the gpu queue: no self-check runs."""
    stack = distributed_stack(
        tmp_path / "stack", workers=0, extra_env={"AUTOGRADER_PUBLISH_TIMEOUT_SECONDS": "3"}
    )
    try:
        stack.start_worker(queues="gpu")
        yield stack
    finally:
        stack.stop()


def _start(stack: Stack, name: str, env: dict[str, str], *args: str) -> subprocess.Popen[Any]:
    """Stack.start with an environment of the process's own (its data folder)."""
    log = open(stack.workdir / f"{name}.log", "ab")  # stays open as long as the process it logs
    proc = subprocess.Popen(
        [str(BIN / "autograder"), *args],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.procs[name] = proc
    return proc


def test_a_late_self_check_publishes_nothing_and_no_shared_folder_is_needed(
    gpu_only_stack: Stack, tmp_path: Path
) -> None:
    stack = gpu_only_stack
    course = clone_course(
        stack, "pub-late", {"late-ivan": "instructor", "late-alice": "student"}, assignments=()
    )
    folder = new_assignment("pub-late", tmp_path / "pub-late")
    started = time.monotonic()
    status, body = _publish(stack, "late-ivan", course, pack(folder))
    assert status == 503, body
    assert "did not finish within 3 s" in str(body["detail"])
    assert time.monotonic() - started < 60

    # A worker of the cpu queue comes along later (a data folder of its own, no course
    # folder) and takes the message: the row was given up, so it does nothing.
    worker_data = tmp_path / "worker-data"
    _start(
        stack,
        "cpu-worker",
        {
            **stack.env,
            "AUTOGRADER_DATA_DIR": str(worker_data),
            "AUTOGRADER_COURSE_DIR": str(tmp_path / "no-course-here"),
        },
        "worker",
        "--queues",
        "cpu",
        "--concurrency",
        "1",
    )
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

    # Another API process, patient, with a data folder of its own: the worker shares no
    # folder with it, self-checks from the blob store, publishes, then grades.
    port = free_port()
    api_env = {
        **stack.env,
        "AUTOGRADER_DATA_DIR": str(tmp_path / "api2-data"),
        "AUTOGRADER_PUBLISH_TIMEOUT_SECONDS": "600",
    }
    wait_http(
        f"http://127.0.0.1:{port}/healthz",
        proc=_start(stack, "api2", api_env, "serve", "--port", str(port)),
    )
    patient = Stack(
        base_url=f"http://127.0.0.1:{port}", env=api_env, workdir=stack.workdir, tokens=stack.tokens
    )
    status, body = _publish(patient, "late-ivan", course, pack(folder))
    assert status == 201, (body, stack.log("cpu-worker")[-3000:])
    notebook = (folder / "notebooks" / "solution.ipynb").read_bytes()
    with patient.client("late-alice") as c:
        response = c.post(
            f"/api/v1/courses/{course}/assignments/pub-late/submissions",
            files={"file": ("answer.ipynb", notebook)},
        )
    assert response.status_code == 202, response.text
    view = wait_graded(patient, "late-alice", response.json()["id"], staff="late-ivan")
    assert view["status"] == "graded" and view["score"] == view["max_score"] > 0, view
    # The worker unpacked the version's bundle into its own cache.
    with stack_db(stack) as db:
        bundle = db.scalar(
            select(AssignmentVersion.bundle_sha256).where(
                AssignmentVersion.version == body["version"]
            )
        )
    assert (worker_data / "cache" / "bundles" / str(bundle) / "pub-late" / "tests.py").is_file()
