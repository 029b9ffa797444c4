"""The grader's end of one sandbox: framed requests with deadlines over a pipe pair."""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from graders.sandbox_api import SandboxCrashed, SandboxTimeout
from protocol.codec import DecodeError, decode, encode
from protocol.frames import HEADER
from protocol.limits import REPLY_LIMITS, DecodeLimits
from protocol.messages import ProtocolViolation, parse_ready


class PipeSandbox:
    """Talks to a sandbox process through two pipes; kills it on any breach of contract."""

    def __init__(
        self,
        pid: int,
        to_child: int,
        from_child: int,
        isolation: str,
        reap: Callable[[int], int | None],
        kill: Callable[[], None] | None = None,
        oom: Callable[[int], bool] | None = None,
        on_close: Callable[[], None] | None = None,
        limits: DecodeLimits = REPLY_LIMITS,
        exit_fd: int | None = None,
        defer_exit: Callable[[PipeSandbox], None] | None = None,
    ) -> None:
        self.pid = pid
        self.to_child = to_child
        self.from_child = from_child
        self.isolation = isolation
        self._reap = reap
        self._kill = kill
        self._oom = oom
        self._on_close = on_close
        self.limits = limits
        #: Readable once the sandbox has exited (a pidfd, or the keeper's status pipe):
        #: waiting for the exit is a select on it, not a poll.
        self.exit_fd = exit_fd
        #: Given the killed sandbox instead of waiting for its exit in close()
        #: (PendingExits.add: the next sandbox's start waits for it instead).
        self._defer_exit = defer_exit
        self._finished = False
        self.closed = False
        self.exit_status: int | None = None
        #: time.monotonic() stamps of the sandbox's start, from its "ready" frame
        self.ready_stamps: dict[str, float] = {}

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """Read the sandbox's first frame, {"event": "ready", "isolation": ...}.

        The isolation string it carries names the layers that really took effect in
        the sandbox; it replaces the one given at construction.
        """
        try:
            ready = parse_ready(self._read_frame(time.monotonic() + timeout))
        except (SandboxTimeout, EOFError, OSError, DecodeError) as exc:
            message = self._death_message(str(exc))
            self.close()
            raise SandboxCrashed(f"the sandbox did not start: {message}") from exc
        except ProtocolViolation as exc:
            self.close()
            raise SandboxCrashed(f"the sandbox did not start: {exc}") from exc
        self.isolation = ready.isolation or self.isolation
        self.ready_stamps = dict(ready.stamps)
        return {
            "isolation": ready.isolation,
            "problems": list(ready.problems),
            "stamps": ready.stamps,
        }

    def request(self, message: dict[str, Any], timeout: float) -> Any:
        """Send one request and read one frame back; every way out but a frame closes."""
        if self.closed:
            raise SandboxCrashed("the sandbox is already closed")
        deadline = time.monotonic() + timeout
        try:
            payload = encode(message)
            view = memoryview(HEADER.pack(len(payload)) + payload)
            while view:
                self._wait(self.to_child, deadline, writable=True)
                written = os.write(self.to_child, view[: 1 << 20])
                view = view[written:]
            return self._read_frame(deadline)
        except SandboxTimeout:
            self.close()
            raise
        except (BrokenPipeError, EOFError, OSError) as exc:
            # Read the exit status before close() kills it, so the cause is not masked.
            reason = self._death_message(str(exc))
            oom = self._was_oom()
            self.close()
            raise SandboxCrashed(reason, oom=oom) from exc
        except DecodeError as exc:
            self.close()
            raise SandboxCrashed(str(exc), protocol=True) from exc
        except BaseException:
            self.close()
            raise

    def _wait(self, fd: int, deadline: float, writable: bool = False) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SandboxTimeout("the sandbox did not answer in time")
        if writable:
            _, ready, _ = select.select([], [fd], [], remaining)
        else:
            ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            raise SandboxTimeout("the sandbox did not answer in time")

    def _read_exact(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        remaining = size
        while remaining:
            self._wait(self.from_child, deadline)
            chunk = os.read(self.from_child, min(remaining, 1 << 20))
            if not chunk:
                raise EOFError("the sandbox closed its pipe")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _read_frame(self, deadline: float) -> Any:
        (size,) = HEADER.unpack(self._read_exact(HEADER.size, deadline))
        if size > self.limits.max_frame_bytes:
            # Refused before a byte of it is read: the sandbox is killed, not drained.
            raise DecodeError(
                f"a reply of {size} bytes is over the limit of {self.limits.max_frame_bytes}"
            )
        return decode(self._read_exact(size, deadline), self.limits)

    def _death_message(self, detail: str) -> str:
        status = self._wait_exit(1.0)
        if status is None:
            return f"the sandbox stopped answering ({detail})"
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            return f"the sandbox was killed by signal {signal.Signals(sig).name}"
        return f"the sandbox exited with status {os.WEXITSTATUS(status)}"

    def _was_oom(self) -> bool:
        status = self.exit_status
        if status is None:
            return False
        if self._oom is not None:
            return self._oom(status)
        return os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9

    def _wait_exit(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.exit_status is None:
            self.exit_status = self._reap(self.pid)
            remaining = deadline - time.monotonic()
            if self.exit_status is not None or remaining <= 0:
                break
            if self.exit_fd is None:
                time.sleep(min(0.01, remaining))
                continue
            try:
                select.select([self.exit_fd], [], [], remaining)
            except (OSError, ValueError):  # closed under us: poll the rest
                self.exit_fd = None
        return self.exit_status

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._kill is not None:
            self._kill()
        else:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._defer_exit is not None:
            self._defer_exit(self)
        else:
            self.finish_close(2.0)

    def finish_close(self, timeout: float) -> None:
        """Wait (up to timeout) for the killed sandbox's exit, then let its handles go."""
        if self._finished:
            return
        self._finished = True
        self._wait_exit(timeout)
        if self._on_close is not None:
            self._on_close()


class PendingExits:
    """Sandboxes killed but not yet seen to exit; the next start waits for them.

    A killed sandbox takes 5-7 ms to exit here (the kernel tears down its memory and
    its namespaces). Waiting for that when the next sandbox of the process starts,
    rather than when a job's last test has run, takes it off the job's path and keeps
    the rule that one slot's sandboxes never overlap (they share a uid's budget).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sandboxes: list[PipeSandbox] = []

    def add(self, sandbox: PipeSandbox) -> None:
        with self._lock:
            self._sandboxes.append(sandbox)

    def settle(self, timeout: float = 2.0) -> None:
        with self._lock:
            sandboxes, self._sandboxes = self._sandboxes, []
        for sandbox in sandboxes:
            sandbox.finish_close(timeout)
