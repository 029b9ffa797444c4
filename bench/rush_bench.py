"""Deadline rush: N uploads from C concurrent clients against PostgreSQL + Redis + workers.

    .venv/bin/python bench/rush_bench.py                      # 1000 uploads, 200 clients
    .venv/bin/python bench/rush_bench.py --uploads 200 --clients 50 --workers 0

Starts its own PostgreSQL cluster and redis-server (never the shared ones), migrates a
fresh database, runs `autograder serve` (uvicorn, one process) and `--workers` grading
workers, enrolls one student per client, then every client uploads a small hw1 .py
submission back to back (closed loop) or, with --spread S, at a steady pace that
spreads the uploads over S seconds (open loop). Prints accepted uploads per second,
the latency of the uploads (p50, p90, p99, max), the answers by status, the API
process's CPU seconds per upload, and then waits until every accepted upload is
graded: zero lost means every 202 has exactly one graded job and one set of results.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from core.accounts import add_user  # noqa: E402
from core.db import make_engine  # noqa: E402
from core.models import GradingJob, TestResult  # noqa: E402
from tests.support.stack import PostgresCluster, RedisServer, distributed_stack  # noqa: E402

HW1 = "hw1-training-basics"
ALT = ROOT / "reference" / HW1 / "alternatives"


def submission(i: int) -> bytes:
    cells = [f"attempt = {i}",
             (ALT / "label_smoothing_ce__torch_builtin.py").read_text(),
             (ALT / "early_stopping_epoch__while_loop.py").read_text()]
    return "".join(f"# %%\n{c}\n" for c in cells).encode()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def rush(base_url: str, tokens: list[str], uploads: int, spread: float | None
               ) -> list[tuple[int, float, str]]:
    clients = len(tokens)
    per_client = [uploads // clients + (1 if k < uploads % clients else 0)
                  for k in range(clients)]
    url = f"/api/v1/courses/dlp/assignments/{HW1}/submissions"
    results: list[tuple[int, float, str]] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    interval = (spread / uploads) if spread else 0.0
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        async def one_client(k: int) -> None:
            headers = {"Authorization": f"Bearer {tokens[k]}"}
            for j in range(per_client[k]):
                n = j * clients + k
                if interval:  # open loop: upload n is due at n * interval
                    delay = t0 + n * interval - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                started = time.perf_counter()
                try:
                    r = await client.post(url, headers=headers,
                                          files={"file": ("hw1.py", submission(n))})
                    body = r.json().get("id", "") if r.status_code == 202 else r.text[:200]
                    results.append((r.status_code, time.perf_counter() - started, body))
                except httpx.HTTPError as exc:
                    results.append((0, time.perf_counter() - started, repr(exc)))

        await asyncio.gather(*(one_client(k) for k in range(clients)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--spread", type=float, default=None,
                        help="spread the uploads over this many seconds (open loop)")
    parser.add_argument("--grade-timeout", type=float, default=1800)
    args = parser.parse_args()

    pg, redis = PostgresCluster().init(), RedisServer()
    pg.start()
    redis.start()
    workdir = Path(tempfile.mkdtemp(prefix="rush-bench-"))
    stack = distributed_stack(workdir, workers=args.workers, pg_admin_url=pg.admin_url,
                              broker_url=redis.url)
    engine = make_engine(stack.env["AUTOGRADER_DATABASE_URL"])
    try:
        with Session(engine) as session:
            tokens = [add_user(session, f"rush{k}", "student", "dlp")
                      for k in range(args.clients)]
            session.commit()
        api_pid = stack.procs["api"].pid
        cpu_before = cpu_seconds(api_pid)
        started = time.perf_counter()
        results = asyncio.run(rush(stack.base_url, tokens, args.uploads, args.spread))
        wall = time.perf_counter() - started
        api_cpu = cpu_seconds(api_pid) - cpu_before

        codes = Counter(code for code, _, _ in results)
        accepted = [body for code, _, body in results if code == 202]
        latency = sorted(t for _, t, _ in results)
        mode = f"spread over {args.spread:g} s" if args.spread else "back to back"
        print(f"deadline rush: {args.uploads} uploads from {args.clients} clients ({mode}), "
              f"{args.workers} workers, uvicorn single process")
        print(f"  answers: {dict(sorted(codes.items()))}")
        print(f"  wall {wall:.1f} s; accepted {len(accepted) / wall:.1f} uploads/s")
        print(f"  latency: p50 {statistics.median(latency) * 1e3:.0f} ms, "
              f"p90 {percentile(latency, 0.90) * 1e3:.0f} ms, "
              f"p99 {percentile(latency, 0.99) * 1e3:.0f} ms, max {latency[-1] * 1e3:.0f} ms "
              f"(spread: stdev {statistics.pstdev(latency) * 1e3:.0f} ms)")
        print(f"  API process CPU: {api_cpu:.1f} s = {api_cpu / len(results) * 1e3:.1f} ms "
              f"per upload")
        failures = [(code, body) for code, _, body in results
                    if code == 0 or (code >= 500 and code != 503)]
        for code, body in failures[:5]:
            print(f"  {code or 'no answer'}: {body}")
        if not args.workers:
            return 0 if not failures else 1

        deadline = time.monotonic() + args.grade_timeout
        graded_started = time.perf_counter()
        while True:
            with Session(engine) as session:
                rows = session.execute(
                    select(GradingJob.submission_id, GradingJob.status, GradingJob.attempt,
                           func.count(TestResult.id))
                    .outerjoin(TestResult, TestResult.job_id == GradingJob.id)
                    .where(GradingJob.submission_id.in_(accepted))
                    .group_by(GradingJob.id)).all()
            done = [r for r in rows if r[1] in ("graded", "failed")]
            if len(done) >= len(accepted) or time.monotonic() > deadline:
                break
            time.sleep(1)
        grading = time.perf_counter() - graded_started
        jobs_per_submission = Counter(r[0] for r in rows)
        graded = [r for r in rows if r[1] == "graded"]
        result_sets = Counter(r[3] for r in graded)
        lost = len(set(accepted) - {r[0] for r in graded})
        doubled = sum(1 for n in jobs_per_submission.values() if n > 1)
        print(f"  graded {len(graded)}/{len(accepted)} in {wall + grading:.0f} s after the "
              f"first upload; lost {lost}, graded twice {doubled}, "
              f"retried {sum(1 for r in rows if r[2] > 1)}, "
              f"results per job {dict(result_sets)}")
        return 0 if not failures and not lost and not doubled else 1
    finally:
        stack.stop()
        engine.dispose()
        redis.destroy()
        pg.destroy()


if __name__ == "__main__":
    sys.exit(main())
