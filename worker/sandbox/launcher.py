"""Starting sandboxes: forked from a warm zygote, isolated as strongly as the host allows.

`start_sandbox(config)` is what the worker calls (through `sandbox_factory`). With
`config.isolation == "auto"` it asks this process's zygote (started on first use,
restarted if it died) for a fresh sandbox: namespaces, pivot_root onto read-only
binds, an unprivileged uid, rlimits, cgroup, seccomp and Landlock, as far as the host
allows; the sandbox itself reports which layers took effect, and that string is the
sandbox's `.isolation`. `config.isolation == "none"` gives `start_plain`: a cold
interpreter with rlimits only, for debugging and as the baseline of the benchmark.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.settings import PROJECT_ROOT
from graders.sandbox_api import SandboxCrashed
from protocol.limits import REPLY_LIMITS, DecodeLimits
from worker.sandbox import slots
from worker.sandbox.config import SandboxConfig, SandboxLimits
from worker.sandbox.host_plan import sandbox_uid
from worker.sandbox.process import PendingExits, PipeSandbox

log = logging.getLogger("worker.sandbox")

ZYGOTE_START_TIMEOUT = 180.0
READY_TIMEOUT = 30.0
_STATUS_SIZE = 5  # zygote.STATUS: wait status (int32) + oom flag (byte)


class SandboxStartError(RuntimeError):
    """No sandbox could be started: a fault of the worker, never of the student."""


# -- the plain child (isolation "none") -------------------------------------------------
def _rlimits(config: SandboxConfig) -> None:
    limits = config.limits
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_mb * mb, limits.file_size_mb * mb))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.setsid()


def start_plain(config: SandboxConfig) -> PipeSandbox:
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    env = {
        "PYTHONPATH": str(PROJECT_ROOT),
        "PATH": "/usr/bin:/bin",
        "OMP_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1",
        "AUTOGRADER_SANDBOX_REPLY_BYTES": str(config.limits.reply_bytes),
    }
    if config.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    else:
        env["AUTOGRADER_SANDBOX_DEVICE"] = config.device
        if "CUDA_VISIBLE_DEVICES" in os.environ:
            env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
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
        cwd=config.submission_dir or "/",
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: _rlimits(config),
    )
    os.close(to_child_r)
    os.close(from_child_w)
    try:
        exit_fd: int | None = os.pidfd_open(proc.pid)
    except OSError:  # an old kernel: PipeSandbox polls instead
        exit_fd = None

    def kill() -> None:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass

    def on_close() -> None:
        if exit_fd is not None:
            with contextlib.suppress(OSError):
                os.close(exit_fd)

    return PipeSandbox(
        pid=proc.pid,
        to_child=to_child_w,
        from_child=from_child_r,
        isolation="process+rlimits (no namespaces)",
        reap=lambda pid: None if proc.poll() is None else _status(proc.returncode),
        kill=kill,
        on_close=on_close,
        limits=reply_limits(config),
        exit_fd=exit_fd,
        defer_exit=_pending_exits.add,
    )


def _status(returncode: int) -> int:
    """Turn Popen's returncode back into a wait status for PipeSandbox."""
    if returncode < 0:
        return -returncode  # WIFSIGNALED with that signal
    return returncode << 8


# -- the zygote ---------------------------------------------------------------------------
def _secret_paths() -> list[str]:
    """Folders a sandbox must never see, even through a bind of the runtime."""
    paths = [PROJECT_ROOT / "reference", PROJECT_ROOT / "var"]
    with contextlib.suppress(Exception):
        from core.settings import get_settings

        settings = get_settings()
        paths += [settings.course_dir, settings.resolved_data_dir, settings.resolved_blob_dir]
    return sorted({str(Path(p).resolve()) for p in paths})


def _zygote_env() -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": str(PROJECT_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1",
    }
    # The GPU this worker slot owns; the child narrows it to "" for CPU jobs.
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return env


class Zygote:
    """The grader's handle on one zygote process (see worker/sandbox/zygote.py)."""

    def __init__(self, slot: int = 1, mode: str | None = None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        options = {
            "slot": slot,
            "mode": mode or "",
            "secret": _secret_paths(),
            "opaque": [str(PROJECT_ROOT)],
            # What the sandbox runs: the protocol and the sandbox program, not the engine.
            "project": [str(PROJECT_ROOT / "protocol"), str(PROJECT_ROOT / "worker")],
        }
        self.owner = os.getpid()
        self.lock = threading.Lock()
        self.sock = ours
        self.proc = subprocess.Popen(
            [sys.executable, "-s", "-m", "worker.sandbox.zygote", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            cwd="/",
            env=_zygote_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        theirs.close()
        try:
            self.sock.send(json.dumps(options).encode())
            hello = self._receive(ZYGOTE_START_TIMEOUT)[0]
        except Exception:
            self.close()
            raise
        if not hello.get("ok"):
            self.close()
            raise SandboxStartError(f"the sandbox zygote failed to start: {hello.get('error')}")
        self.plan: dict[str, Any] = hello.get("plan", {})
        self.isolation_logged: set[str] = set()

    def _receive(self, timeout: float) -> tuple[dict[str, Any], list[int]]:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            raise SandboxStartError("the sandbox zygote did not answer in time")
        data, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 4)
        if not data:
            raise SandboxStartError("the sandbox zygote is gone")
        return json.loads(data), fds

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.proc.poll() is None

    def spawn(self, config: SandboxConfig) -> PipeSandbox:
        job = {
            "submission_dir": str(config.submission_dir) if config.submission_dir else None,
            "public_dirs": [str(p) for p in config.public_dirs],
            "limits": config.limits.to_wire(),
            "device": config.device,
        }
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            with self.lock:
                socket.send_fds(
                    self.sock,
                    [json.dumps({"op": "spawn", "job": job}).encode()],
                    [to_child_r, from_child_w],
                )
                reply, fds = self._receive(READY_TIMEOUT)
        except (OSError, SandboxStartError) as exc:
            for fd in (to_child_w, from_child_r):
                os.close(fd)
            raise SandboxStartError(f"the sandbox zygote failed: {exc}") from exc
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        if not reply.get("ok") or len(fds) != 2:
            for fd in (to_child_w, from_child_r, *fds):
                os.close(fd)
            raise SandboxStartError(f"no sandbox: {reply.get('error', 'no handles')}")
        sandbox = _zygote_sandbox(
            int(reply["pid"]), fds[0], fds[1], to_child_w, from_child_r, reply_limits(config)
        )
        try:
            hello = sandbox.wait_ready(READY_TIMEOUT)
        except SandboxCrashed as exc:
            raise SandboxStartError(str(exc)) from exc
        if sandbox.isolation not in self.isolation_logged:
            self.isolation_logged.add(sandbox.isolation)
            log.info("sandbox isolation: %s", sandbox.isolation)
            for problem in hello.get("problems") or []:
                log.warning("sandbox layer not available: %s", problem)
        return sandbox

    def close(self) -> None:
        """Stop the zygote: on EOF it lets its spare go and exits; killed if it lingers."""
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.owner != os.getpid():
            return
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)


def reply_limits(config: SandboxConfig) -> DecodeLimits:
    return REPLY_LIMITS.with_frame_bytes(config.limits.reply_bytes)


def _zygote_sandbox(
    pid: int, pidfd: int, status_fd: int, to_child: int, from_child: int, limits: DecodeLimits
) -> PipeSandbox:
    state: dict[str, Any] = {"status": None, "oom": 0}
    os.set_blocking(status_fd, False)

    def reap(_: int) -> int | None:
        if state["status"] is None:
            try:
                data = os.read(status_fd, _STATUS_SIZE)
            except BlockingIOError:
                return None
            except OSError:
                data = b""
            if len(data) == _STATUS_SIZE:
                status, oom = int.from_bytes(data[:4], sys.byteorder, signed=True), data[4]
                state["status"], state["oom"] = status, oom
            else:  # the keeper died without a word (its zygote was killed)
                state["status"], state["oom"] = signal.SIGKILL, 0
        known: int | None = state["status"]
        return known

    def kill() -> None:
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except OSError:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def was_oom(status: int) -> bool:
        if state["oom"] == 2:  # no memory cgroup: a SIGKILL we did not send is the OOM killer
            return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        return bool(state["oom"] == 1)

    def on_close() -> None:
        for fd in (pidfd, status_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    return PipeSandbox(
        pid=pid,
        to_child=to_child,
        from_child=from_child,
        isolation="zygote",
        reap=reap,
        kill=kill,
        oom=was_oom,
        on_close=on_close,
        limits=limits,
        exit_fd=status_fd,
        defer_exit=_pending_exits.add,
    )


_zygotes: dict[tuple[int, str], Zygote] = {}
#: This process's killed sandboxes whose exit was not waited for yet.
_pending_exits = PendingExits()
_zygotes_lock = threading.Lock()
_lease: slots.Lease | None = None


def set_worker_slot(slot: int | None) -> None:
    """Lease exactly `slot` for this process (tests, a pinned deployment); None lets
    the next use lease the lowest free slot of the host again."""
    global _lease
    if _lease is not None and _lease.owner == os.getpid():
        if slot is not None and _lease.slot == slot:
            return
        shutdown()
        _lease.release()
    _lease = slots.lease(slot) if slot is not None else None


def worker_slot() -> int:
    """This process's sandbox slot (its sandboxes run as uid 60000 + slot).

    Leased host-wide on first use (worker/sandbox/slots.py): two grading processes
    on one host, of one worker or of several, never share a slot, and with it the
    per-uid process budget.
    """
    global _lease
    if _lease is None or _lease.owner != os.getpid():
        _lease = slots.lease()
        log.info("sandbox slot %s leased (uid %s)", _lease.slot, sandbox_uid(_lease.slot))
    return _lease.slot


def get_zygote(mode: str | None = None) -> Zygote:
    """This process's zygote for `mode` (None: the strongest the host allows)."""
    key = (worker_slot(), mode or os.environ.get("AUTOGRADER_SANDBOX_MODE", ""))
    with _zygotes_lock:
        zygote = _zygotes.get(key)
        if zygote is not None and not zygote.alive():
            if zygote.owner == os.getpid():
                zygote.close()
            zygote = None
        if zygote is None:
            zygote = Zygote(slot=key[0], mode=key[1] or None)
            _zygotes[key] = zygote
            log.info("sandbox zygote started (pid %s): %s", zygote.proc.pid, zygote.plan)
        return zygote


def _forget(zygote: Zygote) -> None:
    with _zygotes_lock:
        for key, value in list(_zygotes.items()):
            if value is zygote:
                del _zygotes[key]
    zygote.close()


def shutdown() -> None:
    """Stop this process's zygotes (their spare sandboxes die with them)."""
    _pending_exits.settle()
    with _zygotes_lock:
        zygotes = list(_zygotes.values())
        _zygotes.clear()
    for zygote in zygotes:
        if zygote.owner == os.getpid():
            zygote.close()


def start_sandbox(config: SandboxConfig) -> PipeSandbox:
    """Start one sandbox with the strongest isolation available (see config.isolation)."""
    _pending_exits.settle()  # the previous sandbox of this process is gone first
    if config.isolation == "none":
        return start_plain(config)
    last: Exception | None = None
    for _ in range(2):
        zygote = get_zygote()
        try:
            return zygote.spawn(config)
        except SandboxStartError as exc:
            last = exc
            if not zygote.alive():
                _forget(zygote)  # restart it on the next try
            else:
                time.sleep(0.05)
    raise SandboxStartError(f"no sandbox could be started: {last}")


def sandbox_factory(
    public_dirs: tuple[Path, ...] = (),
    submission_dir: Path | None = None,
    device: str = "cpu",
    memory_mb: int | None = None,
) -> Callable[[], PipeSandbox]:
    """A factory for the grading engine: each call gives a fresh sandbox.

    memory_mb: what the job's exercises ask for, when more than the configured default.
    """
    wanted_memory = memory_mb
    isolation, memory_mb = "auto", SandboxLimits().memory_mb
    with contextlib.suppress(Exception):
        from core.settings import get_settings

        settings = get_settings()
        isolation, memory_mb = settings.sandbox_isolation, settings.sandbox_memory_mb
    config = SandboxConfig(
        submission_dir=submission_dir,
        public_dirs=tuple(public_dirs),
        device=device,
        isolation=isolation,
        limits=SandboxLimits(memory_mb=max(memory_mb, wanted_memory or 0)),
    )
    return lambda: start_sandbox(config)


def sandbox_provider(
    public_dirs: tuple[Path, ...], submission_dir: Path | None
) -> Callable[[], PipeSandbox]:
    """The engine's SandboxProvider (graders.sandbox_api) for `autograder course check`."""
    return sandbox_factory(public_dirs=public_dirs, submission_dir=submission_dir)


def _after_fork_in_child() -> None:
    # A forked worker (Celery prefork) must not talk to its parent's zygotes, nor
    # keep its parent's slot: it leases its own on first use.
    global _zygotes_lock, _lease, _pending_exits
    _zygotes.clear()
    _pending_exits = PendingExits()
    _zygotes_lock = threading.Lock()
    if _lease is not None:
        with contextlib.suppress(OSError):
            os.close(_lease.fd)  # our copy only: the parent's lock stays
        _lease = None


os.register_at_fork(after_in_child=_after_fork_in_child)
