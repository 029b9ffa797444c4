"""Shared fixtures: a distributed stack (PostgreSQL + Redis + Celery worker processes)
and an embedded one (`autograder up`), each started once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import Stack, distributed_stack, embedded_stack


@pytest.fixture(scope="session")
def pg_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = distributed_stack(tmp_path_factory.mktemp("pg-stack"), concurrency=2)
    try:
        for name, role in (("alice", "student"), ("bob", "student"), ("tina", "ta"),
                           ("ivan", "instructor")):
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
