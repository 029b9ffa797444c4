"""Building a sandbox's root file system: read-only binds, mirrored paths, capped copies."""

from __future__ import annotations

import os
import shutil
import stat

from worker.sandbox.syscalls import (
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_RELATIME,
    MS_REMOUNT,
    mount,
)

ROOT_TMPFS = "size=8m,nr_inodes=2048,mode=0755"
DEV_TMPFS = "size=64k,nr_inodes=64,mode=0755"
COPY_LIMIT = 64 * 1024 * 1024


# -- building the new root ---------------------------------------------------------------
def _source_flags(path: str) -> int:
    """Flags of the mount holding `path` that a remount must keep (locked in a userns)."""
    try:
        f = os.statvfs(path).f_flag
    except OSError:
        return 0
    flags = 0
    for st_flag, ms_flag in (
        (os.ST_NOSUID, MS_NOSUID),
        (os.ST_NODEV, MS_NODEV),
        (os.ST_NOEXEC, MS_NOEXEC),
        (os.ST_NOATIME, MS_NOATIME),
        (os.ST_NODIRATIME, MS_NODIRATIME),
        (os.ST_RELATIME, MS_RELATIME),
    ):
        if f & st_flag:
            flags |= ms_flag
    return flags


def bind(source: str, target: str, writable: bool = False) -> None:
    mount(source, target, None, MS_BIND)
    flags = MS_BIND | MS_REMOUNT | MS_NOSUID | _source_flags(source)
    if not writable:
        flags |= MS_RDONLY
    mount(None, target, None, flags)


def mirror(root: str, host_path: str, is_dir: bool = True) -> str:
    """Create `host_path` under `root`, reproducing symlinks; return the real host path.

    After this, binding the returned path at root + itself makes `host_path` resolve
    inside the new root exactly as it does on the host.
    """
    current = "/"
    parts = [p for p in host_path.split("/") if p]
    for i, part in enumerate(parts):
        candidate = os.path.join(current, part)
        inside = root + candidate
        last = i == len(parts) - 1
        if os.path.islink(candidate):
            if not os.path.lexists(inside):
                os.symlink(os.readlink(candidate), inside)
            resolved = os.path.realpath(candidate)
            current = mirror(root, resolved, is_dir=is_dir or not last)
            continue
        if not os.path.lexists(inside):
            if last and not is_dir:
                os.close(os.open(inside, os.O_CREAT | os.O_WRONLY, 0o644))
            else:
                os.mkdir(inside, 0o755)
        current = candidate
    return current


def world_readable(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return bool(st.st_mode & stat.S_IROTH) and bool(st.st_mode & stat.S_IXOTH)


def copy_tree(source: str, target: str, budget: int = COPY_LIMIT) -> int:
    """Copy regular files and folders (never following links) up to `budget` bytes.

    What does not fit (too big, too many files) is left out: the submission then
    misses files, which the student sees, rather than the sandbox failing to start.
    """
    try:
        entries = list(os.scandir(source))
    except OSError:
        return budget
    for entry in entries:
        try:
            if entry.is_symlink():
                continue
            dest = os.path.join(target, entry.name)
            if entry.is_dir(follow_symlinks=False):
                os.mkdir(dest, 0o755)
                budget = copy_tree(entry.path, dest, budget)
            elif entry.is_file(follow_symlinks=False):
                size = entry.stat(follow_symlinks=False).st_size
                if size > budget:
                    continue
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    with open(fd, "rb", closefd=False) as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                finally:
                    os.close(fd)
                os.chmod(dest, 0o644)
                budget -= size
        except OSError:
            continue
    return budget


def write_file(path: str, text: str) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
