"""The zygote: a warm process that forks one isolated sandbox per request.

Started once per worker process (lazily, restarted if it died), with an empty
environment and nothing of the grader: it imports torch (never CUDA), numpy, the
wire format and the sandbox child, then waits on a unix socket. For each request
it hands out a spare sandbox that was forked, namespaced and given its base root
while nobody waited, and forks the next spare:

    zygote ── fork ──> keeper (C1: new pid namespace, waits, reports the exit status)
                          └─ fork ──> sandbox (C2: pid 1 of its namespace, runs the child)

The grader receives the sandbox's pid, a pidfd to kill it (killing a pid-namespace
init kills everything in it) and a pipe on which the keeper writes the exit status
and whether the memory cgroup killed it. The request pipes go straight to the
sandbox: after the zygote forwards them it is out of the conversation.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
import traceback
from typing import Any

STATUS = struct.Struct("=iB")  # wait status, oom-killed flag (0 no, 1 yes, 2 unknown)
MESSAGE_MAX = 1 << 16


def _send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    socket.send_fds(sock, [json.dumps(message).encode()], list(fds or []))


def _recv(sock: socket.socket, maxfds: int = 4) -> tuple[dict[str, Any] | None, list[int]]:
    data, fds, _, _ = socket.recv_fds(sock, MESSAGE_MAX, maxfds)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data), fds


# == the zygote process ================================================================
class Spare:
    """A keeper and its sandbox, forked ahead of time, waiting for a job."""

    def __init__(self, keeper: int, sock: socket.socket) -> None:
        self.keeper = keeper
        self.sock = sock

    def claim(self, job: dict[str, Any], fds: list[int]) -> tuple[int, list[int]]:
        """Give the job to the sandbox; return its pid and [pidfd, status fd]."""
        self.sock.settimeout(30)
        try:
            hello, handles = _recv(self.sock, 2)
            if hello is None or len(handles) != 2:
                raise OSError("the spare sandbox died before it was used")
            _send(self.sock, {"job": job}, fds)
            return int(hello["pid"]), handles
        finally:
            self.sock.close()

    def discard(self, wait: float = 0.0) -> None:
        """Let the spare go: on EOF its sandbox exits and its keeper cleans up."""
        self.sock.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(self.keeper, os.WNOHANG)
            except ChildProcessError:
                return
            if pid:
                return
            time.sleep(0.01)


def _fork_spare(plan: Any, zygote_sock: socket.socket) -> Spare:
    theirs, mine = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    zygote_pid = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            mine.close()
            zygote_sock.close()
            code = _keeper(plan, theirs, zygote_pid)
        except BaseException:  # the keeper must never return into the zygote
            traceback.print_exc()
        finally:
            os._exit(code)
    theirs.close()
    return Spare(pid, mine)


def _keeper(plan: Any, sock: socket.socket, zygote_pid: int) -> int:
    from worker.sandbox import cgroups, host_plan, syscalls

    syscalls.die_with_parent()
    if os.getppid() != zygote_pid:
        return 1
    os.closerange(3, sock.fileno())
    os.closerange(sock.fileno() + 1, 1 << 20)
    group = None
    if plan.cgroups:
        group = cgroups.create(plan.cgroups, f"z{zygote_pid}-{os.getpid()}")
        if not group.dirs:
            group = None
    scratch = None
    if plan.mode == "plain":
        scratch = tempfile.mkdtemp(prefix=f"{host_plan.SCRATCH_PREFIX}{zygote_pid}-")
        if os.geteuid() == 0:
            os.chown(scratch, plan.uid, plan.gid)
    pid_namespace = user_namespace = False
    if plan.mode == "userns":
        # Mapping only our own uid (to 0 inside) needs no privilege at all.
        _map_user_namespace(os.geteuid(), os.getegid())
        user_namespace = True
    if plan.mode in ("root", "userns"):
        try:
            syscalls.unshare(syscalls.CLONE_NEWPID)
            pid_namespace = True
        except OSError:
            traceback.print_exc()
    alive_r, alive_w = os.pipe()
    status_r, status_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        for fd in (alive_w, status_r, status_w):
            os.close(fd)
        _sandbox(plan, sock, alive_r, group, scratch, pid_namespace, user_namespace)
        return 0  # not reached: _sandbox exits
    os.close(alive_r)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = os.open("/dev/null", os.O_RDONLY)  # the grader then kills by pid
    try:
        _send(sock, {"pid": pid, "pidfd": pidfd >= 0}, [pidfd, status_r])
    except OSError:  # the zygote is gone: so is this spare
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    os.close(pidfd)
    os.close(status_r)
    sock.close()
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            status = 0
            break
    # 1: the memory cgroup killed it, 0: it did not, 2: no memory cgroup to ask.
    oom = 2 if group is None or "memory" not in group.dirs else int(group.oom_killed())
    if not pid_namespace:
        # No namespace init to take the rest with it: its process group, its cgroup.
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        if group is not None:
            _kill_cgroup(group)
    with contextlib.suppress(OSError):
        os.write(status_w, STATUS.pack(status, int(oom)))
    os.close(status_w)
    if group is not None:
        group.remove()
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _map_user_namespace(uid: int, gid: int) -> None:
    """Enter a new user namespace in which 0 is our own uid/gid outside."""
    from worker.sandbox import syscalls

    syscalls.unshare(syscalls.CLONE_NEWUSER)
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def _kill_cgroup(group: Any) -> None:
    for _ in range(20):
        pids: set[int] = set()
        for path in group.dirs.values():
            with contextlib.suppress(OSError, ValueError):
                pids |= {int(p) for p in (path / "cgroup.procs").read_text().split()}
        if not pids:
            return
        for p in pids:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        time.sleep(0.01)


def _sandbox(
    plan: Any,
    sock: socket.socket,
    alive_r: int,
    group: Any,
    scratch: str | None,
    pid_namespace: bool,
    user_namespace: bool,
) -> None:
    """The sandbox process (C2). Never returns."""
    code = 0
    write_fd = -1
    try:
        from protocol.frames import write_frame
        from worker.sandbox import child, syscalls
        from worker.sandbox.config import SandboxLimits
        from worker.sandbox.jail import Jail

        syscalls.die_with_parent()
        if _hung_up(alive_r):
            os._exit(1)
        jail = Jail(plan, group, scratch, pid_namespace, user_namespace)
        jail.prepare()
        sock.settimeout(None)
        try:
            message, fds = _recv(sock, 2)
        except OSError:
            message, fds = None, []
        if message is None or len(fds) != 2:
            os._exit(0)  # the zygote is gone: so is this spare
        sock.close()
        read_fd, write_fd = fds
        job = message["job"]
        stamps = dict(job.get("stamps") or {})
        stamps["sandbox"] = time.monotonic()
        if _hung_up(alive_r):
            os._exit(1)
        isolation_text = jail.finish(job, keep_fds=(read_fd, write_fd))
        stamps.update(jail.stamps)
        stamps["ready"] = time.monotonic()
        with os.fdopen(os.dup(write_fd), "wb", buffering=0) as out:
            write_frame(
                out,
                {
                    "event": "ready",
                    "isolation": isolation_text,
                    "problems": jail.problems,
                    "stamps": stamps,
                },
            )
        limits = SandboxLimits.from_wire(job.get("limits"))
        child.OUTPUT_LIMIT = limits.output_bytes
        reply_limit = limits.reply_bytes
        # Nothing of the job (host paths of the submission and the course's helpers)
        # stays reachable from the frames the student's code can walk.
        del plan, group, job, jail, message, limits
        child.serve(read_fd, write_fd, [], reply_limit)
    except BaseException as exc:  # report and die, never return
        code = 70
        if write_fd >= 0:
            with contextlib.suppress(Exception):
                from protocol.frames import write_frame

                with os.fdopen(os.dup(write_fd), "wb", buffering=0) as out:
                    write_frame(out, {"event": "failed", "error": f"{type(exc).__name__}: {exc}"})
        else:
            with contextlib.suppress(Exception):
                traceback.print_exc()
    finally:
        os._exit(code)


def _hung_up(fd: int) -> bool:
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    return any(ev & (select.POLLHUP | select.POLLIN) for _, ev in poller.poll(0))


def _probe_fork(fn: Any) -> bool:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def make_plan(options: dict[str, Any]) -> Any:
    from worker.sandbox import cgroups, host_plan, landlock, seccomp, syscalls

    slot = int(options.get("slot", 1))
    uid = gid = host_plan.sandbox_uid(slot)
    mode = options.get("mode") or ""
    all_ns = (
        syscalls.CLONE_NEWNS
        | syscalls.CLONE_NEWNET
        | syscalls.CLONE_NEWIPC
        | syscalls.CLONE_NEWUTS
        | syscalls.CLONE_NEWPID
    )

    def userns() -> None:
        syscalls.unshare(syscalls.CLONE_NEWUSER)
        syscalls.unshare(all_ns)

    if not mode:
        if os.geteuid() == 0 and _probe_fork(lambda: syscalls.unshare(all_ns)):
            mode = "root"
        elif _probe_fork(userns):
            mode = "userns"
        else:
            mode = "plain"
    runtime, files = host_plan.runtime_paths(options.get("secret", []), options.get("opaque", []))
    # Root switches to the slot's uid; in a user namespace, or without root, the
    # sandbox keeps the worker's uid outside. Without a new root, the slot's uid must
    # be able to read the runtime where it is (not so under a private /root).
    switch_uid = os.geteuid() == 0 and (
        mode == "root" or (mode == "plain" and all(host_plan.world_traversable(p) for p in runtime))
    )
    if not switch_uid:
        uid, gid = os.geteuid(), os.getegid()
    staging = host_plan.staging_dir()
    host_plan.sweep_scratch()
    hierarchies: dict[str, Any] = {}
    if os.geteuid() == 0 and mode in ("root", "plain"):
        cgroups.sweep()
        hierarchies = cgroups.usable(cgroups.discover())
    return host_plan.Plan(
        mode=mode,
        uid=uid,
        gid=gid,
        landlock_abi=landlock.abi_version(),
        seccomp=seccomp.supported(),
        cgroups=hierarchies,
        runtime=runtime,
        runtime_files=files,
        project=list(options.get("project", [])),
        staging=staging,
        slot=slot,
        switch_uid=switch_uid,
    )


def _plan_from_socket(sock: socket.socket) -> Any:
    """The host plan, from the options the grader sends as the socket's first message.

    The options (which name the folders to hide: the course, the data and blob
    folders) come over the socket, never on the command line, and live only in this
    function's frame: nothing of them is in argv, the environment, or a frame that a
    sandbox forked later could walk.
    """
    options, _ = _recv(sock, 0)
    if options is None:
        raise RuntimeError("the grader closed the socket before sending options")
    return make_plan(options)


def _warm_torch(torch: Any) -> None:
    """Run once here what nearly every notebook runs, without starting any thread: the
    CPU dispatcher, printing tensors of the usual dtypes, a loss. Their first use sets
    up state (formatting, kernels) that every sandbox would otherwise set up again."""
    torch.zeros(2).add_(1)
    logits = torch.randn(4, 3)
    print(logits, torch.tensor([1, 2]), torch.tensor([True]), torch.tensor(0.5), file=io.StringIO())
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0]), label_smoothing=0.1)


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        import numpy  # noqa: F401
        import torch

        torch.set_num_threads(1)
        import protocol.frames  # noqa: F401

        # Everything a sandbox runs is imported here, once: imported after the fork it
        # would be compiled from source again in every sandbox (bytecode is not
        # written), ~15 ms of CPU per sandbox for the jail alone.
        from worker.sandbox import child, jail, model_loading  # noqa: F401

        _warm_torch(torch)
        plan = _plan_from_socket(sock)
    except BaseException as exc:
        _send(sock, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        raise
    _send(sock, {"ok": True, "plan": plan.summary()})
    reaped: list[int] = []

    def reap(*_: Any) -> None:
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            reaped.append(pid)

    signal.signal(signal.SIGCHLD, reap)
    gc.freeze()
    spare: Spare | None = None
    try:
        while True:
            if spare is None:
                spare = _fork_spare(plan, sock)
            request, fds = _recv(sock)
            if request is None:
                break
            try:
                if request.get("op") != "spawn" or len(fds) != 2:
                    _send(sock, {"ok": False, "error": "bad request"})
                    continue
                handles: list[int] = []
                request["job"]["stamps"] = {"zygote": time.monotonic()}
                for attempt in range(2):
                    # A spare forked now (the first one died) holds this job in its
                    # memory: it is only ever given this job.
                    current = spare or _fork_spare(plan, sock)
                    spare = None
                    try:
                        child_pid, handles = current.claim(request["job"], fds)
                        break
                    except OSError:
                        current.discard()
                        if attempt == 1:
                            raise
                _send(sock, {"ok": True, "pid": child_pid}, handles)
                for fd in handles:
                    os.close(fd)
            except Exception as exc:  # one failed spawn is not the zygote's end
                with contextlib.suppress(OSError):
                    _send(sock, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
            finally:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                # The next spare is forked from this process: it must not inherit this
                # job's host paths (submission folder, the course's helper folders).
                request = None
    finally:
        if spare is not None:
            spare.discard(wait=2.0)
        _wait_children(2.0)  # keepers still removing their cgroups
    os._exit(0)


def _wait_children(timeout: float) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


if __name__ == "__main__":
    main()
