"""`autograder course check FOLDER...`: the instructor's self-test of assignments."""

from __future__ import annotations

import argparse
from pathlib import Path

from graders.selfcheck import check_assignment
from graders.selfcheck_report import CheckResult, format_table
from worker.sandbox.launcher import sandbox_provider


def run(args: argparse.Namespace) -> int:
    combined = CheckResult()
    for folder in args.folders:
        result = check_assignment(Path(folder), sandbox_provider)
        combined.rows += result.rows
    print(format_table(combined))
    weak = combined.weak
    if weak:
        print(
            f"weak tests: {len(weak)} buggy variant(s) lose less than a quarter of their "
            "exercise's points: " + ", ".join(f"{r.assignment} {r.variant}" for r in weak)
        )
    print("course check: " + ("all ok" if combined.ok else "FAILED"))
    return 0 if combined.ok else 1
