"""Starting sandboxes: a plain child process with rlimits.

This is the simplest launcher that keeps student code out of the worker's
interpreter. Namespaces, a private root, seccomp and the zygote build on it.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from core.settings import PROJECT_ROOT
from worker.sandbox.config import SandboxConfig
from worker.sandbox.process import PipeSandbox


def _rlimits(config: SandboxConfig) -> None:
    limits = config.limits
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
    resource.setrlimit(
        resource.RLIMIT_FSIZE, (limits.file_size_mb * mb, limits.file_size_mb * mb)
    )
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.setsid()


def _reap(pid: int) -> int | None:
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 0
    return status if done else None


def start_plain(config: SandboxConfig) -> PipeSandbox:
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    env = {
        "PYTHONPATH": str(PROJECT_ROOT),
        "PATH": "/usr/bin:/bin",
        "OMP_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1",
    }
    if config.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-s",
            "-m",
            "worker.sandbox.child",
            str(to_child_r),
            str(from_child_w),
            *[str(p) for p in config.public_dirs],
        ],
        pass_fds=(to_child_r, from_child_w),
        cwd=config.submission_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: _rlimits(config),
    )
    os.close(to_child_r)
    os.close(from_child_w)

    def kill() -> None:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass

    return PipeSandbox(
        pid=proc.pid,
        to_child=to_child_w,
        from_child=from_child_r,
        isolation="process+rlimits (no namespaces)",
        reap=lambda pid: None if proc.poll() is None else _status(proc.returncode),
        kill=kill,
    )


def _status(returncode: int) -> int:
    """Turn Popen's returncode back into a wait status for PipeSandbox."""
    if returncode < 0:
        return -returncode  # WIFSIGNALED with that signal
    return returncode << 8


def start_sandbox(config: SandboxConfig) -> PipeSandbox:
    """Start one sandbox with the strongest isolation available (see config.isolation)."""
    return start_plain(config)


def sandbox_factory(
    public_dirs: tuple[Path, ...] = (), submission_dir: Path | None = None, device: str = "cpu"
) -> Callable[[], PipeSandbox]:
    """A factory for the grading engine: each call gives a fresh sandbox."""
    config = SandboxConfig(
        submission_dir=submission_dir or Path(tempfile.gettempdir()),
        public_dirs=public_dirs,
        device=device,
    )
    return lambda: start_sandbox(config)
