"""GPU check: grade on `cuda` the way a GPU worker slot does, and compare with the CPU.

Run on a machine with a GPU (under 5 minutes): .venv/bin/python bench/gpu_check.py
It pins this process to GPU 0 like a worker slot (CUDA_VISIBLE_DEVICES), then, through
the real sandbox launcher with device="cuda":
- measures the time to the first CUDA result inside a fresh sandbox (the child
  initialises CUDA itself; the zygote never does) and prints the device name;
- grades the hw2 solution notebook (grad_cam is a `gpu` exercise) and a trained
  digits-classifier model on cuda and on cpu, checks the scores are equal, and prints
  the time per grading job.
On a machine without a GPU it says so and runs the CPU half only.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from graders.course import load_assignment
from graders.intake import NOTEBOOK, SAFETENSORS
from graders.runner import grade
from worker.devices import pin_slot, visible_gpus
from worker.sandbox.launcher import sandbox_factory

REFERENCE = Path(__file__).resolve().parent.parent / "reference"
RUNS = 5


def first_cuda_use(public: Path) -> tuple[float, str]:
    factory = sandbox_factory(public_dirs=(public,), device="cuda")
    started = time.perf_counter()
    sandbox = factory()
    try:
        reply = sandbox.request(
            {
                "op": "exec",
                "index": 1,
                "source": (
                    "import torch\n"
                    "print(torch.cuda.get_device_name(0),\n"
                    "      float(torch.ones(1, device='cuda').sum()))\n"
                ),
            },
            timeout=120,
        )
    finally:
        sandbox.close()
    return time.perf_counter() - started, str(reply.get("output", "")).strip() or str(reply)


def time_grading(
    loaded, kind: str, data: bytes, device: str, folder: Path | None, model_path: str | None
) -> tuple[str, list[float]]:
    factory = sandbox_factory(
        public_dirs=(loaded.meta.public_dir,), submission_dir=folder, device=device
    )
    report = grade(loaded, kind, data, factory, model_path=model_path)
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        report = grade(loaded, kind, data, factory, model_path=model_path)
        times.append(time.perf_counter() - started)
    return f"{report.score:g}/{report.max_score:g}", times


def main() -> int:
    gpus = visible_gpus()
    device = pin_slot(0) if gpus else "cpu"
    print(f"GPUs visible: {gpus or 'none'}; slot 0 pinned to {device}")
    hw1 = load_assignment(REFERENCE / "hw1-training-basics")
    hw2 = load_assignment(REFERENCE / "hw2-interpretability")
    folder = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    folder.chmod(0o755)
    torch.set_num_threads(1)
    trained = hw1.reference.train_digits_mlp(seed=0)
    save_file(trained.state_dict(), str(folder / "model.safetensors"))
    (folder / "model.safetensors").chmod(0o644)
    jobs = [
        (
            "hw2 solution notebook",
            hw2,
            NOTEBOOK,
            (hw2.meta.folder / "notebooks" / "solution.ipynb").read_bytes(),
            None,
            None,
        ),
        (
            "digits-classifier model",
            hw1,
            SAFETENSORS,
            (folder / "model.safetensors").read_bytes(),
            folder,
            "model.safetensors",
        ),
    ]
    devices = ["cpu"] + (["cuda"] if gpus else [])
    if gpus:
        seconds, said = first_cuda_use(hw2.meta.public_dir)
        print(f"first CUDA result in a fresh sandbox: {seconds * 1000:.0f} ms ({said})")
    ok = True
    for name, loaded, kind, data, sub_folder, model_path in jobs:
        scores = {}
        for dev in devices:
            score, times = time_grading(loaded, kind, data, dev, sub_folder, model_path)
            scores[dev] = score
            print(
                f"{name:<26} on {dev:<4}: score {score}, "
                f"{statistics.median(times) * 1000:.0f} ms per job "
                f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, n={RUNS})"
            )
        if len(set(scores.values())) != 1:
            ok = False
            print(f"  MISMATCH: {scores}")
    if not gpus:
        print("no GPU on this machine: only the CPU half ran")
    print("gpu check:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
