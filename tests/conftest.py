"""Shared fixtures: a distributed stack (PostgreSQL + Redis + Celery worker processes)
and an embedded one (`autograder up`), each started once per test session; and the
fast tier's in-process service (tests/support/inprocess.py), one per test module.

Tests marked `fast` (`make test-fast`) start no server: they may not ask for a stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.support.browser import CHROMIUM, MISSING, chromium
from tests.support.inprocess import InProcessService
from tests.support.stack import Stack, distributed_stack, embedded_stack

#: The fixtures that start servers (processes, PostgreSQL, Redis): not for fast tests.
SERVER_FIXTURES = frozenset({"pg_stack", "embedded", "any_stack", "browser"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        wanted = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("fast") and wanted:
            raise pytest.UsageError(
                f"{item.nodeid} is marked fast but starts servers "
                f"({', '.join(sorted(wanted))}): use `service`"
            )


@pytest.fixture(scope="session")
def pg_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = distributed_stack(tmp_path_factory.mktemp("pg-stack"), concurrency=2)
    try:
        for name, role in (
            ("alice", "student"),
            ("bob", "student"),
            ("tina", "ta"),
            ("ivan", "instructor"),
        ):
            stack.add_user(name, role)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = embedded_stack(tmp_path_factory.mktemp("embedded"))
    try:
        # Same names as the distributed stack, so one test serves both.
        stack.tokens["tina"] = stack.tokens["ta"]
        stack.tokens["ivan"] = stack.tokens["instructor"]
        yield stack
    finally:
        stack.stop()


@pytest.fixture(params=["pg_stack", "embedded"])
def any_stack(request: pytest.FixtureRequest) -> Stack:
    """The same test against both deployments."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def service_template(tmp_path_factory: pytest.TempPathFactory) -> InProcessService:
    """Migrated once per session (the bundled course, the users), then stopped: each
    module's `service` starts from a copy of its database and blobs."""
    template = InProcessService(tmp_path_factory.mktemp("inprocess-template"))
    template.start()
    template.stop()
    return template


@pytest.fixture(scope="module")
def service(
    service_template: InProcessService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessService]:
    """The real app in this process over SQLite, an in-process queue that grades each
    job as it is sent (sandbox isolation none); users alice, bob (students), tina (TA),
    ivan (instructor) in course dlp. One per module: tests of a module share it."""
    with InProcessService(tmp_path_factory.mktemp("inprocess"), template=service_template) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright, for the page tests of a module."""
    if not CHROMIUM.exists():
        pytest.fail(MISSING)
    with chromium() as started:
        yield started
