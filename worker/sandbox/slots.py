"""Sandbox slots: one number per grading process on a host, leased, never shared.

A slot names the unprivileged uid its sandboxes run as (host_plan.sandbox_uid).
RLIMIT_NPROC and every other per-uid budget are counted per uid, so two processes
that grade at the same time must never share one, whichever worker process (or
Celery pool index) they belong to. A slot is leased with an exclusive flock on a
file in a host-wide folder: the kernel drops the lock when its process dies, so a
crashed worker never keeps its slot, and no registry needs cleaning.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

#: Slots handed out automatically: 1..MAX_SLOT (uids 60001..).
MAX_SLOT = 4000


class SlotTaken(RuntimeError):
    """The slot asked for is leased by another process on this host."""


def lease_folder() -> Path:
    """A folder every worker process of this host sees: /run when root, else /tmp."""
    base = (
        Path("/run")
        if os.geteuid() == 0 and os.access("/run", os.W_OK)
        else Path(tempfile.gettempdir())
    )
    folder = base / f"autograder-slots-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    return folder


class Lease:
    """A slot held by this process until release() or the process's end."""

    def __init__(self, slot: int, fd: int) -> None:
        self.slot = slot
        self.fd = fd
        self.owner = os.getpid()

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = -1


def _try(folder: Path, slot: int) -> Lease | None:
    fd = os.open(folder / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return Lease(slot, fd)


def lease(slot: int | None = None) -> Lease:
    """Lease `slot`, or the lowest free one; SlotTaken if none can be had."""
    folder = lease_folder()
    if slot is not None:
        held = _try(folder, slot)
        if held is None:
            raise SlotTaken(f"sandbox slot {slot} is in use by another process on this host")
        return held
    for candidate in range(1, MAX_SLOT + 1):
        held = _try(folder, candidate)
        if held is not None:
            return held
    raise SlotTaken(f"all {MAX_SLOT} sandbox slots of this host are in use")
