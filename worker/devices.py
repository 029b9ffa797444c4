"""Which device a worker slot grades on.

A GPU worker (one consuming the `gpu` queue) runs one slot per visible GPU and pins
each slot to its GPU with CUDA_VISIBLE_DEVICES before anything touches CUDA. The
worker never initialises CUDA itself: only the sandbox child does, so the zygote stays
fork-safe. GPU exercises that land on a CPU-only worker run on the CPU, and the job
record says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess

ENV_QUEUES = "AUTOGRADER_WORKER_QUEUES"
#: The Celery pool index of this process (its GPU, when it has one); the sandbox uid
#: comes from a host-wide lease instead (worker/sandbox/slots.py).
ENV_SLOT = "AUTOGRADER_POOL_INDEX"


def visible_gpus() -> list[str]:
    """GPU indices this host shows, without initialising CUDA (nvidia-smi, else none)."""
    preset = os.environ.get("CUDA_VISIBLE_DEVICES")
    if preset is not None:
        return [g for g in preset.split(",") if g.strip() and g.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def consumes_gpu_queue() -> bool:
    return "gpu" in os.environ.get(ENV_QUEUES, "").split(",")


def pin_slot(slot: int) -> str:
    """Called in each pool process at start: pin it to one GPU, or hide GPUs entirely."""
    gpus = visible_gpus()
    os.environ[ENV_SLOT] = str(slot)
    if consumes_gpu_queue() and gpus:
        gpu = gpus[slot % len(gpus)]
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        return f"cuda (GPU {gpu})"
    return "cpu"


def grading_device() -> str:
    """'cuda' in a slot pinned to a GPU, else 'cpu'."""
    if consumes_gpu_queue() and os.environ.get("CUDA_VISIBLE_DEVICES", "").strip() not in (
        "",
        "-1",
    ):
        return "cuda"
    return "cpu"
