"""The fast tier's service: the real FastAPI app in this process, over SQLite in a
temporary folder, with an in-process queue in place of the broker.

Nothing is started: no PostgreSQL, Redis, Celery or uvicorn. The app is driven with
FastAPI's TestClient; what the service sends to the broker is recorded by an
`InProcessQueue`, which grades it with the worker's own code
(worker.grading.grade_delivered) in this process, with sandbox isolation "none" (a
plain child process) unless a test asks for more.

    with InProcessService(tmp_path) as service:
        body = service.grade("alice", HW1, "solution.ipynb", data)

(tests/conftest.py: `service`, one per module, copied from one migrated per session.)
"""

from __future__ import annotations

import os
import shutil
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

import core.queue
from api.main import create_app
from api.settings import get_api_settings
from cli.service import migrate
from core import blobs, db
from core.accounts import add_user
from core.queue import GRADE_TASK
from core.settings import get_settings
from worker import content
from worker.grading import grade_delivered

#: The users every in-process service has, as in the stacks of tests/support/stack.py.
USERS = (("alice", "student"), ("bob", "student"), ("tina", "ta"), ("ivan", "instructor"))


@dataclass(frozen=True)
class SentTask:
    name: str
    args: tuple[Any, ...]
    queue: str


class _Declared:
    def __init__(self, count: int) -> None:
        self.message_count = count


class _Channel:
    def __init__(self, queue: InProcessQueue) -> None:
        self._queue = queue

    def queue_declare(self, queue: str, passive: bool = False) -> _Declared:
        return _Declared(len(self._queue.waiting(queue)))


class _Connection:
    def __init__(self, queue: InProcessQueue) -> None:
        self._queue = queue
        self.default_channel = _Channel(queue)

    def __enter__(self) -> _Connection:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def ensure_connection(
        self, max_retries: int | None = None, timeout: float | None = None
    ) -> None:
        if not self._queue.reachable:
            raise ConnectionError("the in-process broker is unreachable (set by the test)")


class InProcessQueue:
    """The broker seam (the Celery app that core.queue sends through), in-process.

    Sends are recorded in `sent`; `take()` hands out those not yet taken, in order, as
    a worker would consume them. `reachable = False` makes every send and every
    connection fail, as a broker that is down.
    """

    def __init__(self, deliver: Callable[[SentTask], None]) -> None:
        self.sent: list[SentTask] = []
        self.reachable = True
        #: Deliver each task as soon as it is sent (in the sender's thread).
        self.grade_on_send = True
        self._deliver = deliver
        self._taken = 0
        self._delivering = False

    # -- the part of Celery's app that core.queue uses ---------------------------------
    def send_task(
        self,
        name: str,
        args: list[Any] | tuple[Any, ...] | None = None,
        queue: str | None = None,
        **_: Any,
    ) -> None:
        if not self.reachable:
            raise ConnectionError("the in-process broker is unreachable (set by the test)")
        self.sent.append(SentTask(name, tuple(args or ()), queue or "cpu"))
        if self.grade_on_send:
            self.deliver_waiting()

    def connection_for_write(self) -> _Connection:
        return _Connection(self)

    # -- for the tests -----------------------------------------------------------------
    def waiting(self, queue: str | None = None) -> list[SentTask]:
        return [t for t in self.sent[self._taken :] if queue is None or t.queue == queue]

    def drop_waiting(self) -> list[SentTask]:
        """Take what waits without delivering it (a broker that lost its messages)."""
        dropped = self.sent[self._taken :]
        self._taken = len(self.sent)
        return dropped

    def deliver_waiting(self) -> int:
        """Deliver what waits, in order, until nothing does (a delivery may send again);
        how many were delivered. Not re-entered: a send during a delivery waits its turn."""
        if self._delivering:
            return 0
        self._delivering = True
        count = 0
        try:
            while self._taken < len(self.sent):
                task = self.sent[self._taken]
                self._taken += 1
                self._deliver(task)
                count += 1
        finally:
            self._delivering = False
        return count

    def jobs_sent(self) -> list[str]:
        return [str(t.args[0]) for t in self.sent if t.name == GRADE_TASK]


class InProcessService:
    """One deployment in this process, over SQLite in `folder`; its settings come from
    the environment, as the real processes read them, set by `start()` and put back by
    `stop()`. Made from a `template` (a started-then-stopped service), it starts with a
    copy of the template's database and blobs: migrated, the bundled course loaded, the
    users of USERS with their tokens.

    It has what tests use of a `Stack` (tests/support/stack.py): `client(user)`,
    `submit`, `wait_graded`, `grade`, `tokens`, `env`, `log`, so the helpers of
    tests/support/staffing.py work on either.

    By default each job is graded as soon as it is sent (`queue.grade_on_send`), in the
    request that sent it; set it to False to let jobs wait, and `grade_pending()`.
    """

    base_url = "http://testserver"

    def __init__(
        self,
        folder: Path,
        template: InProcessService | None = None,
        course: str = "dlp",
        env: dict[str, str] | None = None,
    ) -> None:
        self.folder = folder
        self.template = template
        self.course = course
        self.data_dir = folder / "var"
        self.env = {
            "AUTOGRADER_DATA_DIR": str(self.data_dir),
            "AUTOGRADER_SANDBOX_ISOLATION": "none",
            "AUTOGRADER_BLOB_BACKEND": "folder",
            **(env or {}),
        }
        self.queue = InProcessQueue(self._deliver)
        self.tokens: dict[str, str] = {}
        #: Deliveries that raised (the worker would have logged them).
        self.errors: list[str] = []
        self._saved_env: dict[str, str] = {}
        self._saved_celery: Any = None
        self._app: FastAPI | None = None

    # -- life ----------------------------------------------------------------------
    def start(self) -> InProcessService:
        self._saved_env = {k: v for k, v in os.environ.items() if k.startswith("AUTOGRADER_")}
        for key in self._saved_env:
            del os.environ[key]
        os.environ.update(self.env)
        _forget_process_state()
        self._saved_celery = core.queue.get_celery
        core.queue.get_celery = lambda: self.queue  # type: ignore[assignment,return-value]
        if self.template is not None:
            shutil.copytree(self.template.data_dir, self.data_dir)
            self.tokens = dict(self.template.tokens)
        else:
            migrate()
            with self.db() as session:
                for name, role in USERS:
                    self.tokens[name] = add_user(session, name, role, self.course)
        self._app = create_app(run_sweeper=False)
        return self

    def stop(self) -> None:
        if self._saved_celery is not None:
            core.queue.get_celery = self._saved_celery
            self._saved_celery = None
        _forget_process_state()
        for key in [k for k in os.environ if k.startswith("AUTOGRADER_")]:
            del os.environ[key]
        os.environ.update(self._saved_env)
        _forget_process_state()

    def __enter__(self) -> InProcessService:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def app(self) -> FastAPI:
        assert self._app is not None, "start() the service first"
        return self._app

    # -- the database ----------------------------------------------------------------
    @contextmanager
    def db(self) -> Iterator[Session]:
        """A session on the service's database (committed on success)."""
        with db.session_scope() as session:
            yield session

    def add_user(self, name: str, role: str = "student", course: str | None = None) -> str:
        with self.db() as session:
            token = add_user(session, name, role, course or self.course)
        self.tokens[name] = token
        return token

    # -- HTTP --------------------------------------------------------------------------
    def client(self, user: str | None = None, token: str | None = None) -> TestClient:
        """A client of the app, signed in as `user` (or with `token`), or anonymous.
        Errors of the app come back as answers (500), as a real server gives them."""
        token = token or (self.tokens[user] if user else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return TestClient(self.app, headers=headers, raise_server_exceptions=False)

    def submit(
        self,
        user: str,
        assignment: str,
        filename: str,
        data: bytes,
        headers: dict[str, str] | None = None,
        course: str | None = None,
    ) -> httpx.Response:
        path = f"/api/v1/courses/{course or self.course}/assignments/{assignment}/submissions"
        return self.client(user).post(path, files={"file": (filename, data)}, headers=headers or {})

    def wait_graded(self, user: str, submission_id: str, timeout: float = 0) -> dict[str, Any]:
        """Grade what waits, then what `user` reads about the submission (final)."""
        self.grade_pending()
        body = self.client(user).get(f"/api/v1/submissions/{submission_id}")
        assert body.status_code == 200, body.text
        assert body.json()["status"] in ("graded", "failed"), (body.json(), self.errors)
        return dict(body.json())

    def grade(
        self, user: str, assignment: str, filename: str, data: bytes, timeout: float = 0
    ) -> dict[str, Any]:
        """Submit, grade, and return what `user` then reads about the submission."""
        response = self.submit(user, assignment, filename, data)
        assert response.status_code == 202, response.text
        return self.wait_graded(user, response.json()["id"])

    def log(self, name: str = "worker") -> str:
        return "\n".join(self.errors)

    # -- the worker --------------------------------------------------------------------
    def _deliver(self, task: SentTask) -> None:
        if task.name != GRADE_TASK:
            return
        try:
            grade_delivered(str(task.args[0]), device="cpu")
        except Exception:  # a worker logs it and goes on; the test sees it in `errors`
            self.errors.append(traceback.format_exc())

    @contextmanager
    def jobs_held(self, drop: bool = True) -> Iterator[InProcessQueue]:
        """Within: jobs are sent but not graded (they stay queued). After: those sent
        within are dropped (never graded, as if the broker lost them) unless drop=False,
        when they wait for `grade_pending()`."""
        self.queue.grade_on_send = False
        try:
            yield self.queue
        finally:
            self.queue.grade_on_send = True
            if drop:
                self.queue.drop_waiting()

    def grade_pending(self) -> int:
        """Grade every job sent and not yet taken, in order (and those a failed attempt
        sends again); how many deliveries were made."""
        return self.queue.deliver_waiting()


def _forget_process_state() -> None:
    """Drop what the process built from the previous settings: engines, stores, caches."""
    if db.get_engine.cache_info().currsize:
        db.get_engine().dispose()
    for cached in (get_settings, get_api_settings, db.get_engine, db.get_sessionmaker):
        cached.cache_clear()
    blobs._stores.clear()
    content._caches.clear()
