"""How fast is a sandbox? Prints numbers; not a test.

    .venv/bin/python bench/sandbox_bench.py [--runs 30] [--cold-runs 10]

1. Sandbox ready: from the request to the first answer of a fresh sandbox, forked
   from the warm zygote (fully isolated) against a cold `python -m worker.sandbox.child`.
2. Job start: from "a job starts" to "sandbox ready with the submission imported"
   (the hw1 solution notebook's cells all run), both ways.
3. Call round trip with a 1 MB and a 4 MB float32 tensor (sent and returned; replies
   are capped at 8 MiB by default).
4. Decoding overhead per reply: the bounded structural scan (protocol.scan) and the
   whole bounded decode, against plain msgpack.unpackb of the same bytes (the floor).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graders.intake import read_cells  # noqa: E402
from graders.student import SubmissionSession  # noqa: E402
from worker.sandbox import launcher  # noqa: E402
from worker.sandbox.config import SandboxConfig  # noqa: E402

HW1 = ROOT / "reference" / "hw1-training-basics"


def summary(name: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=10) if len(ms) >= 2 else [ms[0]] * 9
    print(
        f"  {name:<44} median {statistics.median(ms):8.1f} ms   p10 {q[0]:8.1f}   "
        f"p90 {q[-1]:8.1f}   min {ms[0]:8.1f}   max {ms[-1]:8.1f}   (n={len(ms)})"
    )


def timed(fn: Callable[[], object], runs: int, pause: float) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
        time.sleep(pause)  # let the zygote fork its next spare, as between real jobs
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--cold-runs", type=int, default=10)
    parser.add_argument(
        "--pause",
        type=float,
        default=0.2,
        help="seconds between jobs (the zygote forks a spare meanwhile)",
    )
    args = parser.parse_args()

    public = (HW1 / "public",) if (HW1 / "public").is_dir() else ()
    warm = SandboxConfig(public_dirs=public)
    cold = SandboxConfig(public_dirs=public, isolation="none")
    cells = read_cells("notebook", (HW1 / "notebooks" / "solution.ipynb").read_bytes())

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}, uid {os.geteuid()}"
    )
    started = time.perf_counter()
    zygote = launcher.get_zygote()
    print(
        f"zygote start (import torch, probe the host): "
        f"{(time.perf_counter() - started) * 1000:.0f} ms; plan {zygote.plan}"
    )
    first = launcher.start_sandbox(warm)
    print(f"isolation: {first.isolation}")
    first.close()
    time.sleep(args.pause)

    def ready_warm() -> None:
        before = time.monotonic()
        sandbox = launcher.start_sandbox(warm)
        sandbox.request({"op": "ping", "seq": 1}, timeout=30)
        stamps = dict(sandbox.ready_stamps)
        previous = before
        for name, at in sorted(stamps.items(), key=lambda item: item[1]):
            timings.setdefault(f"  step: {name}", []).append(at - previous)
            previous = at
        timings["close"].append(_close(sandbox))

    def ready_cold() -> None:
        sandbox = launcher.start_sandbox(cold)
        sandbox.request({"op": "ping", "seq": 1}, timeout=60)
        sandbox.close()

    def job(config: SandboxConfig) -> Callable[[], None]:
        def run() -> None:
            session = SubmissionSession(
                lambda: launcher.start_sandbox(config), cells, cell_timeout=60
            )
            session.ensure()
            if any(r.status != "ok" for r in session.cell_reports):
                raise RuntimeError(f"the solution did not load: {session.cell_reports}")
            session.close()

        return run

    timings: dict[str, list[float]] = {"close": []}
    print("\n1. request -> sandbox ready (first answer)")
    summary("zygote fork, fully isolated", timed(ready_warm, args.runs, args.pause))
    summary("cold python -m worker.sandbox.child", timed(ready_cold, args.cold_runs, 0))
    summary("(zygote sandbox close: kill + exit status)", timings["close"])
    print("  where the zygote path's time goes (each step since the previous one):")
    for name, samples in timings.items():
        if name.startswith("  step"):
            summary(name, samples)

    print(
        f"\n2. job starts -> sandbox ready with the submission imported "
        f"({len(cells)} cells of hw1's solution)"
    )
    summary("zygote", timed(job(warm), args.runs, args.pause))
    summary("cold interpreter", timed(job(cold), args.cold_runs, 0))

    print("\n3. call round trip (tensor sent and returned)")
    sandbox = launcher.start_sandbox(warm)
    sandbox.request(
        {"op": "exec", "index": 1, "source": "def echo(x):\n    return x\n", "seq": 1}, timeout=30
    )
    for mb in (1, 4):
        tensor = torch.randn(mb * 1024 * 1024 // 4)

        def call(tensor: torch.Tensor = tensor) -> None:
            reply = sandbox.request(
                {"op": "call", "target": "echo", "args": [tensor], "seq": 1}, timeout=30
            )
            assert reply["ok"] and reply["value"].shape == tensor.shape

        summary(f"{mb} MB float32 tensor", timed(call, args.runs, 0))
    sandbox.close()
    launcher.shutdown()
    decoding_overhead(args.runs * 10)


def decoding_overhead(runs: int) -> None:
    """Per reply: scan, whole bounded decode, and msgpack alone (no checks) as the floor."""
    import msgpack

    from protocol.codec import decode, encode
    from protocol.limits import REPLY_LIMITS
    from protocol.scan import check

    replies = {
        "scalar answer (hw1 loss)": {
            "ok": True,
            "seq": 7,
            "value": torch.tensor(0.5),
            "mutated": [],
            "output": "",
        },
        "tuple of two [64, 10] tensors": {
            "ok": True,
            "seq": 7,
            "value": (torch.randn(64, 10), torch.randn(64, 10)),
            "mutated": [],
            "output": "",
        },
        "list of 10,000 floats": {"ok": True, "seq": 7, "value": [0.5] * 10_000, "output": ""},
        "1 MB float32 tensor": {"ok": True, "seq": 7, "value": torch.randn(262_144), "output": ""},
    }
    print(f"\n4. decoding one reply (n={runs} each): scan, bounded decode, plain msgpack")
    for name, reply in replies.items():
        data = encode(reply)
        scan = timed(lambda data=data: check(data, REPLY_LIMITS), runs, 0)
        whole = timed(lambda data=data: decode(data, REPLY_LIMITS), runs, 0)
        plain = timed(
            lambda data=data: msgpack.unpackb(data, raw=False, ext_hook=lambda c, d: d), runs, 0
        )
        print(
            f"  {name:<32} {len(data):>9} bytes: scan {statistics.median(scan) * 1e6:8.1f} us, "
            f"decode {statistics.median(whole) * 1e6:8.1f} us, msgpack alone "
            f"{statistics.median(plain) * 1e6:8.1f} us"
        )


def _close(sandbox: launcher.PipeSandbox) -> float:
    started = time.perf_counter()
    sandbox.close()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
