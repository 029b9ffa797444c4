"""Fixtures for the sandbox tests: the hw1 assignment, secrets planted in the grader's
environment and on its disk, and a helper that gathers everything a student can read
back from a grading report (feedback, output, cell messages)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from graders.course import LoadedAssignment, load_assignment
from graders.intake import NOTEBOOK
from graders.runner import GradeLimits, GradeReport, grade
from worker.sandbox import launcher

ROOT = Path(__file__).resolve().parents[2]
HW1 = ROOT / "reference" / "hw1-training-basics"
LIMITS = GradeLimits(cell_timeout=3.0, call_timeout=3.0, job_timeout=60.0)

SECRET_DB = "postgresql://grader:s3cr3t-Hunter2-db@127.0.0.1:5432/autograder"
SECRET_BROKER = "redis://:s3cr3t-Hunter2-redis@127.0.0.1:6379/0"
SECRET_TOKEN = "tok-" + uuid.uuid4().hex


@dataclass
class Secrets:
    values: list[str]
    canary_path: Path
    canary: str
    reference_lines: list[str]

    def leaked(self, text: str) -> list[str]:
        found = [v for v in self.values if v in text]
        found += [line for line in self.reference_lines if line in text]
        return found


def _reference_lines() -> list[str]:
    """Distinctive lines of the hidden files: none may ever reach a student."""
    lines = []
    for name in ("tests.py", "reference.py"):
        for line in (HW1 / name).read_text().splitlines():
            line = line.strip()
            if len(line) >= 30 and not line.startswith(("import ", "from ", "#", '"""')):
                lines.append(line)
    return lines


@pytest.fixture(scope="session")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secrets]:
    """Plant secrets in the grader's environment and on disk, then start a fresh zygote."""
    from core.settings import get_settings

    saved = {k: os.environ.get(k) for k in ("AUTOGRADER_DATABASE_URL", "AUTOGRADER_BROKER_URL",
                                            "AUTOGRADER_SECRET_TOKEN")}
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
        yield Secrets([SECRET_DB, SECRET_BROKER, SECRET_TOKEN, "s3cr3t-Hunter2", canary],
                      canary_path, canary, _reference_lines())
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
    return load_assignment(HW1)


@pytest.fixture(scope="session")
def solution() -> bytes:
    return (HW1 / "notebooks" / "solution.ipynb").read_bytes()


@pytest.fixture(scope="session")
def factory(secrets: Secrets, hw1: LoadedAssignment):  # noqa: ANN201
    return launcher.sandbox_factory(public_dirs=(hw1.meta.public_dir,))


def student_text(report: GradeReport) -> str:
    """Everything a grading report could show a student."""
    parts = [report.output]
    parts += [t.feedback for t in report.tests]
    parts += [c.message for c in report.cells]
    return "\n".join(parts)


def grade_notebook(hw1: LoadedAssignment, data: bytes, factory, limits=LIMITS) -> GradeReport:  # noqa: ANN001
    return grade(hw1, NOTEBOOK, data, factory, limits=limits)


def uid_processes(uid: int) -> list[int]:
    """Host pids of processes running as `uid` (a sandbox that outlived its close)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            found.append(int(entry))
                        break
        except OSError:
            continue
    return found
