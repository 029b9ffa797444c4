"""How long grading one correct notebook takes, per assignment, in the worker.

Measures graders.runner.grade on each assignment's solution notebook with the worker's
sandbox launcher, after one warm-up run (expected values cached, sandbox zygote warm):
the median and spread of the total, the time to a loaded sandbox, and the tests that
dominate. Run: .venv/bin/python bench/grading_bench.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from graders.course import load_assignment, load_course
from graders.intake import NOTEBOOK
from graders.runner import grade
from worker.sandbox.launcher import sandbox_factory

REFERENCE = Path(__file__).resolve().parent.parent / "reference"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    course = load_course(REFERENCE)
    print(
        f"{'assignment':<22} {'median s':>9} {'min':>7} {'max':>7} {'load med':>9}  "
        "slowest tests (median s)"
    )
    for meta in course.assignments:
        loaded = load_assignment(meta.folder)
        data = (meta.folder / "notebooks" / "solution.ipynb").read_bytes()
        factory = sandbox_factory(public_dirs=(meta.public_dir,))
        grade(loaded, NOTEBOOK, data, factory)  # warm-up: caches expected values
        totals, loads = [], []
        per_test: dict[str, list[float]] = defaultdict(list)
        for _ in range(args.runs):
            report = grade(loaded, NOTEBOOK, data, factory)
            assert report.score == report.max_score, f"{meta.slug}: {report.score}"
            totals.append(report.durations["total"])
            loads.append(report.durations["load"])
            for t in report.tests:
                per_test[f"{t.exercise}/{t.name}"].append(t.seconds)
        slowest = sorted(per_test.items(), key=lambda kv: -statistics.median(kv[1]))[:3]
        tops = "; ".join(f"{name} {statistics.median(v):.3f}" for name, v in slowest)
        print(
            f"{meta.slug:<22} {statistics.median(totals):>9.3f} {min(totals):>7.3f} "
            f"{max(totals):>7.3f} {statistics.median(loads):>9.3f}  {tops}"
        )


if __name__ == "__main__":
    main()
