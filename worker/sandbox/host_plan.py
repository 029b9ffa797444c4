"""The plan: what this host allows a sandbox, decided once by the zygote.

Which mode (root, userns, plain), which uid, and which host paths make up the
Python runtime that is bound read-only into each sandbox (none of which exposes a
secret folder).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from typing import Any

from worker.sandbox import cgroups

UID_BASE = 60000
SCRATCH_PREFIX = "autograder-sandbox-z"  # + zygote pid: plain mode's per-sandbox /tmp


@dataclass
class Plan:
    #: "root" (namespaces + pivot_root + uid switch), "userns" (the same inside a user
    #: namespace, no root needed), or "plain" (a forked process, Landlock on host paths).
    mode: str
    uid: int
    gid: int
    landlock_abi: int = 0
    seccomp: bool = False
    cgroups: dict[str, cgroups.Hierarchy] = field(default_factory=dict)
    #: Host directories bound read-only at their own path (the Python runtime).
    runtime: list[str] = field(default_factory=list)
    #: Host files bound read-only at their own path (/etc/ld.so.cache).
    runtime_files: list[str] = field(default_factory=list)
    #: The project's sandbox-side packages (graders/, worker/).
    project: list[str] = field(default_factory=list)
    #: An empty host directory to build the new root on (inside the mount namespace).
    staging: str = ""
    slot: int = 1
    #: Whether the sandbox switches to `uid` (root only).
    switch_uid: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "uid": self.uid,
            "landlock_abi": self.landlock_abi,
            "seccomp": self.seccomp,
            "cgroups": sorted(self.cgroups),
        }


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def runtime_paths(secret: list[str], opaque: list[str]) -> tuple[list[str], list[str]]:
    """Directories and files the Python runtime needs, none of which exposes a secret.

    `secret` paths (the course, the data folder) are never inside a bind; `opaque`
    paths (the project root) are never bound whole, though a venv inside one may be.
    A directory that contains either is replaced by its children, recursively.
    """
    wanted: set[str] = {"/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"}
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        if prefix.rstrip("/"):
            wanted.add(prefix)
    base = {"base": sys.base_prefix, "platbase": sys.base_prefix}
    for scheme_paths in (sysconfig.get_paths(), sysconfig.get_paths(vars=base)):
        for key in ("stdlib", "platstdlib", "purelib", "platlib", "scripts"):
            if scheme_paths.get(key):
                wanted.add(scheme_paths[key])
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir:
        wanted.add(libdir)
    wanted.add(os.path.dirname(os.path.realpath(sys.executable)))
    prefixes = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    for entry in sys.path:
        # Site folders only: never "" or the zygote's cwd, nor any folder of the project.
        if not entry or not os.path.isabs(entry) or not os.path.isdir(entry):
            continue
        if entry.endswith(("site-packages", "dist-packages")) or any(
            _inside(entry, p) for p in prefixes
        ):
            wanted.add(entry)
    secret = [os.path.realpath(p) for p in secret if p]
    opaque = [os.path.realpath(p) for p in opaque if p]
    dirs: list[str] = []
    links: list[str] = []
    for path in sorted(wanted):
        if not os.path.lexists(path) or os.path.realpath(path) == "/":
            continue
        if os.path.islink(path) and os.path.dirname(path) == "/":
            links.append(path)  # /lib -> usr/lib: mirrored as a link
            continue
        dirs.extend(_cover(os.path.abspath(path), secret, opaque))
    dirs = _outermost(dirs) + links
    files = [f for f in ("/etc/ld.so.cache",) if os.path.isfile(f)]
    return dirs, files


def _cover(path: str, secret: list[str], opaque: list[str]) -> list[str]:
    real = os.path.realpath(path)
    if any(_inside(real, s) for s in secret) or real in opaque:
        return []
    if not any(_inside(b, real) for b in [*secret, *opaque]):
        return [path]
    try:
        children = sorted(os.listdir(real))
    except OSError:
        return []
    out: list[str] = []
    for name in children:
        child = os.path.join(real, name)
        if os.path.isdir(child) and not os.path.islink(child):
            out.extend(_cover(child, secret, opaque))
    return out


def _outermost(paths: list[str]) -> list[str]:
    out: list[str] = []
    for path in sorted(set(paths), key=lambda p: (os.path.realpath(p).count("/"), p)):
        real = os.path.realpath(path)
        if not any(_inside(real, os.path.realpath(o)) for o in out):
            out.append(path)
    return sorted(out)


def world_traversable(path: str) -> bool:
    """Whether any uid can reach and read `path` (every folder on the way o+x)."""
    current = os.path.realpath(path)
    try:
        if not os.stat(current).st_mode & stat.S_IROTH:
            return False
        while current != "/":
            current = os.path.dirname(current)
            if not os.stat(current).st_mode & stat.S_IXOTH:
                return False
    except OSError:
        return False
    return True


def sandbox_uid(slot: int) -> int:
    return UID_BASE + slot


def staging_dir() -> str:
    """An empty folder to mount each sandbox's new root on (in its own mount namespace).

    It is only ever a mount point, so one stable folder per uid serves every zygote.
    """
    path = os.path.join(tempfile.gettempdir(), f"autograder-sandbox-root-{os.geteuid()}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o755)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return tempfile.mkdtemp(prefix="autograder-sandbox-root-")
    return path


def sweep_scratch() -> None:
    """Remove the scratch folders of plain-mode sandboxes whose zygote is gone."""
    base = tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for name in os.listdir(base):
            owner = name[len(SCRATCH_PREFIX) :].split("-")[0]
            if (
                name.startswith(SCRATCH_PREFIX)
                and owner.isdigit()
                and not os.path.exists(f"/proc/{owner}")
            ):
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
