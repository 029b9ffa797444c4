"""A memory and pids cgroup per sandbox, where the host lets us write one.

cgroup v2 is used for a controller when the unified hierarchy offers it, else the
v1 hierarchy that carries it (hybrid hosts have both). Every sandbox gets its own
group under `autograder-sandbox/`, removed when the sandbox is gone.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

BASE = "autograder-sandbox"
CONTROLLERS = ("memory", "pids")


@dataclass
class Hierarchy:
    controller: str
    root: Path
    v2: bool


def _mounts() -> list[tuple[str, str, list[str]]]:
    try:
        text = Path("/proc/self/mounts").read_text()
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            rows.append((parts[1].replace("\\040", " "), parts[2], parts[3].split(",")))
    return rows


def discover() -> dict[str, Hierarchy]:
    """Where each controller lives (v2 preferred), whether or not it is writable."""
    found: dict[str, Hierarchy] = {}
    mounts = _mounts()
    for point, fstype, _ in mounts:
        if fstype != "cgroup2":
            continue
        try:
            available = Path(point, "cgroup.controllers").read_text().split()
        except OSError:
            continue
        for controller in CONTROLLERS:
            if controller in available and controller not in found:
                found[controller] = Hierarchy(controller, Path(point), True)
    for point, fstype, options in mounts:
        if fstype != "cgroup":
            continue
        for controller in CONTROLLERS:
            if controller in options and controller not in found:
                found[controller] = Hierarchy(controller, Path(point), False)
    return found


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


@dataclass
class SandboxCgroup:
    """One sandbox's groups, one directory per hierarchy that carries our controllers."""

    dirs: dict[str, Path] = field(default_factory=dict)  # controller -> group dir
    v2: dict[str, bool] = field(default_factory=dict)

    @property
    def controllers(self) -> list[str]:
        return [c for c in CONTROLLERS if c in self.dirs]

    def join(self) -> None:
        """Move the calling process into every group ("0" means the writer itself)."""
        for path in sorted(set(self.dirs.values())):
            _write(path / "cgroup.procs", "0")

    def set_limits(self, memory_bytes: int, pids: int) -> None:
        for controller, path in self.dirs.items():
            if controller == "memory":
                if self.v2[controller]:
                    _write(path / "memory.max", str(memory_bytes))
                    with contextlib.suppress(OSError):
                        _write(path / "memory.swap.max", "0")
                    with contextlib.suppress(OSError):  # an OOM kill takes the whole sandbox
                        _write(path / "memory.oom.group", "1")
                else:
                    _write(path / "memory.limit_in_bytes", str(memory_bytes))
                    if (path / "memory.memsw.limit_in_bytes").exists():
                        with contextlib.suppress(OSError):
                            _write(path / "memory.memsw.limit_in_bytes", str(memory_bytes))
            elif controller == "pids":
                _write(path / "pids.max", str(pids))

    def oom_killed(self) -> bool:
        path = self.dirs.get("memory")
        if path is None:
            return False
        name = "memory.events" if self.v2["memory"] else "memory.oom_control"
        try:
            for line in (path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def remove(self, attempts: int = 50) -> None:
        for path in sorted(set(self.dirs.values())):
            for _ in range(attempts):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _prepare_base(h: Hierarchy) -> Path:
    base = h.root / BASE
    if h.v2:
        # Children of a v2 group get a controller only if the parent delegates it.
        with contextlib.suppress(OSError):
            _write(h.root / "cgroup.subtree_control", f"+{h.controller}")
        base.mkdir(exist_ok=True)
        _write(base / "cgroup.subtree_control", f"+{h.controller}")
    else:
        base.mkdir(exist_ok=True)
    return base


def create(hierarchies: dict[str, Hierarchy], name: str) -> SandboxCgroup:
    """Make the groups for one sandbox; controllers that cannot be set up are left out."""
    group = SandboxCgroup()
    made: dict[Path, Path] = {}
    for controller, h in hierarchies.items():
        try:
            if h.root not in made:
                path = _prepare_base(h) / name
                path.mkdir()
                made[h.root] = path
            elif h.v2:
                _write(h.root / BASE / "cgroup.subtree_control", f"+{controller}")
            group.dirs[controller] = made[h.root]
            group.v2[controller] = h.v2
        except OSError:
            continue
    return group


def usable(hierarchies: dict[str, Hierarchy]) -> dict[str, Hierarchy]:
    """The controllers in which this process can really create, limit and join a group."""
    ok: dict[str, Hierarchy] = {}
    probe = create(hierarchies, f"probe-{os.getpid()}")
    try:
        for controller in probe.controllers:
            path = probe.dirs[controller]
            limit = (
                "memory.max"
                if (controller == "memory" and probe.v2[controller])
                else ("memory.limit_in_bytes" if controller == "memory" else "pids.max")
            )
            if os.access(path / limit, os.W_OK) and os.access(path / "cgroup.procs", os.W_OK):
                ok[controller] = hierarchies[controller]
    finally:
        probe.remove(attempts=1)
    return ok


def sweep(zygote_prefix: str = "z") -> None:
    """Remove empty groups left behind by zygotes that are gone."""
    for h in discover().values():
        base = h.root / BASE
        try:
            entries = list(base.iterdir())
        except OSError:
            continue
        for entry in entries:
            if not entry.is_dir() or not entry.name.startswith(zygote_prefix):
                continue
            owner = entry.name[len(zygote_prefix) :].split("-")[0]
            if owner.isdigit() and Path(f"/proc/{owner}").exists():
                continue
            with contextlib.suppress(OSError):
                entry.rmdir()
