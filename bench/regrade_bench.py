"""Bulk regrade: 200 submissions of hw4 (hw1 if hw4 is missing) regraded by staff.

    .venv/bin/python bench/regrade_bench.py                  # 200 submissions, 3 rounds
    .venv/bin/python bench/regrade_bench.py --submissions 50 --rounds 1 --slots 1

Its own PostgreSQL cluster and redis-server, `autograder serve` and one
`autograder worker --concurrency SLOTS` (default: one slot per CPU). The submissions
(the solution notebook, each with one distinct extra cell) are stored directly (in the
stack's blob store and database, as an upload would leave them), then each round is one
POST .../assignments/{a}/regrade and polling GET /api/v1/regrades/{batch} until done.

Printed: submissions per second per round (median, min, max), the CPU per job of each
part (the worker's own processes, its sandboxes, the API, PostgreSQL), and the overhead ratio
= wall time per job / the time the same tests take in a plain Python process: the
grading engine, the hidden tests and the student's code all in this one process, no
sandbox, no service (median of a few in-process gradings after a warm-up). Both with
wall time per job as the throughput sees it (slots working in parallel) and per slot
(wall time x slots / jobs), the latter being the cost of one job on one core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.proc_cpu import cpu_seconds, cpu_split  # noqa: E402
from core.accounts import add_user  # noqa: E402
from core.blobs import get_blob_store  # noqa: E402
from core.db import make_engine  # noqa: E402
from core.models import Assignment, GradingJob, Submission, User  # noqa: E402
from core.settings import Settings  # noqa: E402
from protocol.codec import decode, encode  # noqa: E402
from protocol.limits import REPLY_LIMITS, REQUEST_LIMITS  # noqa: E402
from tests.support.stack import PostgresCluster, RedisServer, distributed_stack  # noqa: E402


def pick_assignment() -> str:
    hw4 = ROOT / "reference" / "hw4-small-data"
    return hw4.name if (hw4 / "notebooks" / "solution.ipynb").exists() else "hw1-training-basics"


def notebook_with_cell(notebook: bytes, source: str) -> bytes:
    import nbformat

    nb = nbformat.reads(notebook.decode(), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(source))
    return nbformat.writes(nb).encode()


class InProcessSandbox:
    """The engine's sandbox protocol answered in this very process: no isolation, no
    pipe, no fork (the wire encoding is kept, so the tests see the same values)."""

    isolation = "none (in-process baseline)"

    def __init__(self, public_dirs: list[str]) -> None:
        from worker.sandbox.child import CappedText, Runtime

        for directory in public_dirs:
            if directory not in sys.path:
                sys.path.insert(0, directory)
        self.runtime = Runtime(CappedText(64 * 1024))

    def request(self, message: dict[str, Any], timeout: float) -> Any:
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = self.runtime.output  # type: ignore[assignment]
        try:
            reply = self.runtime.handle(decode(encode(message), REQUEST_LIMITS))
        finally:
            sys.stdout, sys.stderr = saved
        reply["output"] = self.runtime.output.take()
        reply["seq"] = message.get("seq")
        return decode(encode(reply), REPLY_LIMITS)

    def close(self) -> None:
        pass


def plain_python_seconds(assignment: str, data: bytes, repeats: int = 7) -> float:
    """Median time of grading `data` with everything in this process."""
    import torch

    from graders.course import load_assignment
    from graders.runner import grade

    torch.set_num_threads(1)  # as in the sandbox
    loaded = load_assignment(ROOT / "reference" / assignment)
    public = [str(loaded.meta.public_dir)] if loaded.meta.public_dir.is_dir() else []
    times = []
    for i in range(repeats + 2):
        started = time.perf_counter()
        report = grade(loaded, "notebook", data, lambda: InProcessSandbox(public))
        elapsed = time.perf_counter() - started
        assert report.score == report.max_score > 0, (report.score, report.max_score)
        if i >= 2:  # warm: the reference's expected values are cached, as in a worker
            times.append(elapsed)
    return statistics.median(times)


def store_submissions(
    stack_env: dict[str, str], assignment: str, notebook: bytes, count: int
) -> None:
    engine = make_engine(stack_env["AUTOGRADER_DATABASE_URL"])
    # The stack's own blob store (its database, as `auto` picks for PostgreSQL).
    store = get_blob_store(
        Settings(
            data_dir=Path(stack_env["AUTOGRADER_DATA_DIR"]),
            database_url=stack_env["AUTOGRADER_DATABASE_URL"],
        )
    )
    with Session(engine) as session:
        target = session.scalar(select(Assignment).where(Assignment.slug == assignment))
        assert target is not None
        for k in range(count):
            name = f"regrade{k // 25}"
            user = session.scalar(select(User).where(User.name == name))
            if user is None:
                add_user(session, name, "student", "dlp")
                session.flush()
                user = session.scalar(select(User).where(User.name == name))
            assert user is not None
            data = notebook_with_cell(notebook, f"submission_number = {k}")
            sha = store.put_bytes(data)
            session.add(
                Submission(
                    assignment_id=target.id,
                    user_id=user.id,
                    sha256=sha,
                    filename="solution.ipynb",
                    file_kind="notebook",
                    size_bytes=len(data),
                )
            )
        session.commit()
    engine.dispose()


def last_finish(database_url: str, batch: str) -> float:
    """When the batch's last job finished (the service's clock: this machine's)."""
    engine = make_engine(database_url)
    with Session(engine) as session:
        finished = session.scalar(
            select(func.max(GradingJob.finished_at)).where(GradingJob.batch_id == batch)
        )
    engine.dispose()
    assert finished is not None
    return finished.timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slots", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    assignment = pick_assignment()
    notebook = (ROOT / "reference" / assignment / "notebooks" / "solution.ipynb").read_bytes()
    pg, redis = PostgresCluster().init(), RedisServer()
    pg.start()
    redis.start()
    stack = distributed_stack(
        Path(tempfile.mkdtemp(prefix="regrade-bench-")),
        workers=1,
        concurrency=args.slots,
        pg_admin_url=pg.admin_url,
        broker_url=redis.url,
    )
    try:
        store_submissions(stack.env, assignment, notebook, args.submissions)
        ta = stack.add_user("tina", "ta")
        rates, per_job = [], []
        pg_pid = int((pg.data / "postmaster.pid").read_text().split()[0])
        parts: dict[str, list[float]] = {}

        def cpu_now() -> dict[str, float]:
            grader, sandboxes = cpu_split(stack.procs["worker"].pid, "worker.sandbox.zygote")
            return {
                "worker (engine, Celery, database client)": grader,
                "sandboxes (zygote, keepers, student code)": sandboxes,
                "API": cpu_seconds(stack.procs["api"].pid),
                "PostgreSQL": cpu_seconds(pg_pid),
            }

        with httpx.Client(
            base_url=stack.base_url, timeout=60, headers={"Authorization": f"Bearer {ta}"}
        ) as client:
            for _ in range(args.rounds + 1):  # the first round warms the worker up
                cpu_before = cpu_now()
                started_wall = time.time()
                r = client.post(
                    f"/api/v1/courses/dlp/assignments/{assignment}/regrade",
                    json={"reason": "benchmark"},
                )
                assert r.status_code == 202, r.text
                batch = r.json()["batch_id"]
                while True:
                    body = client.get(f"/api/v1/regrades/{batch}").json()
                    if body["status"] == "done":
                        break
                    time.sleep(0.5)  # a slow poll: its own cost stays out of the API's CPU
                # The batch's end is its last job's finish, not when the poll noticed it.
                wall = last_finish(stack.env["AUTOGRADER_DATABASE_URL"], batch) - started_wall
                for name, seconds in cpu_now().items():
                    spent = (seconds - cpu_before[name]) / args.submissions
                    parts.setdefault(name, []).append(spent)
                assert body["failed"] == 0 and body["done"] == args.submissions, body
                rates.append(args.submissions / wall)
                per_job.append(wall / args.submissions)
        rates, per_job = rates[1:], per_job[1:]
        parts = {name: values[1:] for name, values in parts.items()}
        baseline = plain_python_seconds(assignment, notebook)
        ratio = [p / baseline for p in per_job]
        slot_ratio = [p * args.slots / baseline for p in per_job]
        print(
            f"bulk regrade of {args.submissions} {assignment} submissions, "
            f"{args.rounds} rounds, 1 worker x {args.slots} slots, PostgreSQL + Redis"
        )
        print(
            f"  submissions/s: median {statistics.median(rates):.1f} "
            f"(min {min(rates):.1f}, max {max(rates):.1f})"
        )
        print(
            f"  wall time per job: median {statistics.median(per_job) * 1e3:.0f} ms "
            f"(min {min(per_job) * 1e3:.0f}, max {max(per_job) * 1e3:.0f})"
        )
        for name, values in parts.items():
            print(
                f"  CPU per job, {name}: median {statistics.median(values) * 1e3:.1f} ms "
                f"(min {min(values) * 1e3:.1f}, max {max(values) * 1e3:.1f})"
            )
        total = [sum(values[i] for values in parts.values()) for i in range(len(rates))]
        print(
            f"  CPU per job, all of these: median {statistics.median(total) * 1e3:.1f} ms; "
            f"{len(os.sched_getaffinity(0))} cores carry at most "
            f"{len(os.sched_getaffinity(0)) / statistics.median(total):.1f} jobs/s"
        )
        print(
            f"  the same tests in a plain Python process: {baseline * 1e3:.0f} ms per "
            f"submission (median of 7, warm)"
        )
        print(
            f"  overhead ratio (wall per job / plain): median {statistics.median(ratio):.2f} "
            f"(min {min(ratio):.2f}, max {max(ratio):.2f}); per slot "
            f"{statistics.median(slot_ratio):.2f}"
        )
        return 0
    finally:
        stack.stop()
        redis.destroy()
        pg.destroy()


if __name__ == "__main__":
    sys.exit(main())
