"""`autograder course check FOLDER...`: the instructor's self-test of assignments."""

from __future__ import annotations

import argparse
from pathlib import Path

import graders.models  # noqa: F401  (registers the self-check of model exercises)
from graders.course import LoadedAssignment
from graders.sandbox_api import SandboxFactory
from graders.selfcheck import CheckResult, check_assignment, format_table


def _factory_for(loaded: LoadedAssignment) -> SandboxFactory:
    from worker.sandbox.launcher import sandbox_factory

    return sandbox_factory(public_dirs=(loaded.meta.public_dir,))


def run(args: argparse.Namespace) -> int:
    combined = CheckResult()
    for folder in args.folders:
        result = check_assignment(Path(folder), _factory_for)
        combined.rows += result.rows
    print(format_table(combined))
    weak = combined.weak
    if weak:
        print(f"weak tests: {len(weak)} buggy variant(s) lose less than a quarter of their "
              "exercise's points: " + ", ".join(f"{r.assignment} {r.variant}" for r in weak))
    print("course check: " + ("all ok" if combined.ok else "FAILED"))
    return 0 if combined.ok else 1
