"""Fixtures for the sandbox tests: the hw1 assignment, secrets planted in the grader's
environment and on its disk, a sandbox factory. The helpers are in tests/support/sandbox.py."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from core.settings import get_settings
from graders.course import LoadedAssignment, load_assignment
from graders.sandbox_api import SandboxFactory
from tests.support.paths import HW1_DIR
from tests.support.sandbox import (
    SECRET_BROKER,
    SECRET_DB,
    SECRET_TOKEN,
    Secrets,
    reference_lines,
)
from worker.sandbox import launcher


@pytest.fixture(scope="session")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secrets]:
    """Plant secrets in the grader's environment and on disk, then start a fresh zygote."""
    saved = {
        k: os.environ.get(k)
        for k in ("AUTOGRADER_DATABASE_URL", "AUTOGRADER_BROKER_URL", "AUTOGRADER_SECRET_TOKEN")
    }
    os.environ["AUTOGRADER_DATABASE_URL"] = SECRET_DB
    os.environ["AUTOGRADER_BROKER_URL"] = SECRET_BROKER
    os.environ["AUTOGRADER_SECRET_TOKEN"] = SECRET_TOKEN
    get_settings.cache_clear()
    data = tmp_path_factory.mktemp("secret-data")
    canary = "CANARY-" + uuid.uuid4().hex
    canary_path = data / "hidden-expected.txt"
    canary_path.write_text(canary)
    canary_path.chmod(0o644)
    data.chmod(0o755)
    # Our own slot, leased like a worker's (launcher.worker_slot() says which): tests
    # running beside a worker, or beside each other, never share a sandbox uid.
    launcher.set_worker_slot(None)
    launcher.worker_slot()
    try:
        yield Secrets(
            [SECRET_DB, SECRET_BROKER, SECRET_TOKEN, "s3cr3t-Hunter2", canary],
            canary_path,
            canary,
            reference_lines(),
        )
    finally:
        launcher.shutdown()
        launcher.set_worker_slot(None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


@pytest.fixture(scope="session")
def hw1() -> LoadedAssignment:
    return load_assignment(HW1_DIR)


@pytest.fixture(scope="session")
def solution() -> bytes:
    return (HW1_DIR / "notebooks" / "solution.ipynb").read_bytes()


@pytest.fixture(scope="session")
def factory(secrets: Secrets, hw1: LoadedAssignment) -> SandboxFactory:
    return launcher.sandbox_factory(public_dirs=(hw1.meta.public_dir,))
