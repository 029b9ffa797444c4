"""What the sandbox tests share: secrets to plant, what a student can read back from a
grading report, grading a hw1 notebook through the real engine, processes of a uid."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from graders.course import LoadedAssignment
from graders.intake import NOTEBOOK
from graders.runner import GradeLimits, GradeReport, grade
from graders.sandbox_api import SandboxFactory
from tests.support.paths import HW1_DIR

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


def reference_lines() -> list[str]:
    """Distinctive lines of the hidden files: none may ever reach a student."""
    lines = []
    for name in ("tests.py", "reference.py"):
        for line in (HW1_DIR / name).read_text().splitlines():
            line = line.strip()
            if len(line) >= 30 and not line.startswith(("import ", "from ", "#", '"""')):
                lines.append(line)
    return lines


def student_text(report: GradeReport) -> str:
    """Everything a grading report could show a student."""
    parts = [report.output]
    parts += [t.feedback for t in report.tests]
    parts += [c.message for c in report.cells]
    return "\n".join(parts)


def grade_notebook(
    hw1: LoadedAssignment, data: bytes, factory: SandboxFactory, limits: GradeLimits = LIMITS
) -> GradeReport:
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
