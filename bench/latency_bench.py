"""Submit-to-graded latency of one hw1 notebook, warm workers, distributed and embedded.

    .venv/bin/python bench/latency_bench.py                 # both modes, 30 samples each
    .venv/bin/python bench/latency_bench.py --mode embedded --samples 50

Distributed: its own PostgreSQL cluster and redis-server (never the shared ones),
`autograder serve` and one `autograder worker`. Embedded: `autograder up` (SQLite,
filesystem broker) in a temporary data dir. In each, a few warm-up submissions first,
then one submission at a time: the clock runs from sending the upload to the
"graded" event on the submission's event stream (GET /api/v1/submissions/{id}/events,
opened as soon as the upload is answered). Also printed, from the job record: upload
to claim (API, broker, worker pick-up), the sandbox started and the cells run
(durations.load), the tests, the whole engine (durations.total), claim to results
written, and results written to the event read. Target (issue 18): p50 <= 80 ms,
p95 <= 120 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from core.accounts import add_user  # noqa: E402
from core.db import make_engine  # noqa: E402
from tests.support.stack import (  # noqa: E402
    PostgresCluster,
    RedisServer,
    Stack,
    distributed_stack,
    embedded_stack,
)

HW1 = "hw1-training-basics"
NOTEBOOK = (ROOT / "reference" / HW1 / "notebooks" / "solution.ipynb").read_bytes()
PER_STUDENT = 25  # below hw1's cap of 30 submissions a day


def summary(name: str, values: list[float]) -> str:
    v = sorted(values)
    p95 = v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]
    return (
        f"{name:<24} median {statistics.median(v) * 1e3:6.0f} ms   p95 {p95 * 1e3:6.0f} ms"
        f"   min {v[0] * 1e3:5.0f}   max {v[-1] * 1e3:5.0f}   "
        f"stdev {statistics.pstdev(v) * 1e3:4.0f} ms"
    )


def measure(stack: Stack, database_url: str, samples: int, warmup: int) -> dict[str, list[float]]:
    engine = make_engine(database_url)
    students = [f"latency{k}" for k in range((samples + warmup) // PER_STUDENT + 1)]
    with Session(engine) as session:
        tokens = [add_user(session, name, "student", "dlp") for name in students]
        session.commit()
    engine.dispose()
    staff = stack.tokens.get("tina") or stack.tokens.get("ta") or stack.add_user("tina", "ta")
    out: dict[str, list[float]] = {
        "submit to graded": [],
        "upload (202)": [],
        "upload to claim": [],
        "sandbox + cells": [],
        "tests": [],
        "grading (engine)": [],
        "claim to written": [],
        "written to event read": [],
    }
    url = f"/api/v1/courses/dlp/assignments/{HW1}/submissions"
    with (
        httpx.Client(base_url=stack.base_url, timeout=60) as client,
        httpx.Client(
            base_url=stack.base_url, timeout=60, headers={"Authorization": f"Bearer {staff}"}
        ) as ta,
    ):
        for i in range(warmup + samples):
            headers = {"Authorization": f"Bearer {tokens[i // PER_STUDENT]}"}
            started, started_wall = time.perf_counter(), time.time()
            r = client.post(url, headers=headers, files={"file": ("solution.ipynb", NOTEBOOK)})
            accepted = time.perf_counter() - started
            assert r.status_code == 202, r.text
            sid = r.json()["id"]
            body = final_event(client, sid, headers)
            total = time.perf_counter() - started
            assert body["status"] == "graded" and body["score"] == body["max_score"], body
            if i < warmup:
                continue
            job = ta.get(f"/api/v1/submissions/{sid}/jobs").json()[0]
            created, claimed, finished = (
                _ts(job[k]) for k in ("created_at", "started_at", "finished_at")
            )
            durations = job["durations"]
            out["submit to graded"].append(total)
            out["upload (202)"].append(accepted)
            out["upload to claim"].append(claimed - created)
            out["sandbox + cells"].append(float(durations["load"]))
            out["tests"].append(float(durations["total"]) - float(durations["load"]))
            out["grading (engine)"].append(float(durations["total"]))
            out["claim to written"].append(finished - claimed)
            out["written to event read"].append(started_wall + total - finished)
    return out


def final_event(client: httpx.Client, sid: str, headers: dict[str, str]) -> dict[str, Any]:
    """The submission's last status event: read from its event stream until final."""
    with client.stream("GET", f"/api/v1/submissions/{sid}/events", headers=headers) as r:
        assert r.status_code == 200, r.status_code
        for line in r.iter_lines():
            if line.startswith("data:"):
                body: dict[str, Any] = json.loads(line[5:])
                if body["status"] in ("graded", "failed"):
                    return body
    raise AssertionError(f"the event stream of {sid} ended before a final status")


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def run_distributed(samples: int, warmup: int) -> dict[str, list[float]]:
    pg, redis = PostgresCluster().init(), RedisServer()
    pg.start()
    redis.start()
    stack = distributed_stack(
        Path(tempfile.mkdtemp(prefix="latency-dist-")),
        workers=1,
        pg_admin_url=pg.admin_url,
        broker_url=redis.url,
    )
    try:
        return measure(stack, stack.env["AUTOGRADER_DATABASE_URL"], samples, warmup)
    finally:
        stack.stop()
        redis.destroy()
        pg.destroy()


def run_embedded(samples: int, warmup: int) -> dict[str, list[float]]:
    workdir = Path(tempfile.mkdtemp(prefix="latency-emb-"))
    stack = embedded_stack(workdir)
    try:
        url = f"sqlite:///{workdir / 'var' / 'autograder.db'}"
        return measure(stack, url, samples, warmup)
    finally:
        stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["both", "distributed", "embedded"], default="both")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    modes = ["distributed", "embedded"] if args.mode == "both" else [args.mode]
    for mode in modes:
        run = run_distributed if mode == "distributed" else run_embedded
        results = run(args.samples, args.warmup)
        print(
            f"\n{mode}: submit-to-graded of hw1's solution notebook, {args.samples} samples, "
            f"one at a time, warm worker (target: p50 <= 80 ms, p95 <= 120 ms)"
        )
        for name, values in results.items():
            print("  " + summary(name, values))
        total = statistics.median(results["submit to graded"])
        engine = statistics.median(results["grading (engine)"])
        print(
            f"  floor (the grading engine itself, sandbox included): median {engine * 1e3:.0f} ms;"
            f" submit-to-graded / floor = {total / engine:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
