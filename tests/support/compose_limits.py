"""Run a command under a Docker-style seccomp profile, as `docker run --security-opt
seccomp=PROFILE` would: the profile's JSON is turned into a filter with libseccomp and
loaded (with no_new_privs, as `no-new-privileges:true` sets), then the command is
exec'd. Combined with `setpriv --bounding-set` for the capabilities, it is how
tests/test_compose.py runs the sandbox's tests under the compose file's limits on a
machine without a Docker engine.

    python tests/support/compose_limits.py scripts/seccomp-worker.json -- pytest tests/sandbox
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import sys
from pathlib import Path
from typing import Any

ACTIONS = {
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_LOG": 0x7FFC0000,
}
SCMP_ACT_ERRNO = 0x00050000


def _action(rule: dict[str, Any], default_errno: int = 1) -> int:
    name = rule["action"]
    if name == "SCMP_ACT_ERRNO":
        return SCMP_ACT_ERRNO | int(rule.get("errnoRet", default_errno))
    return ACTIONS[name]


def load(profile_path: Path) -> int:
    """Load the profile into this process; returns how many syscalls got a rule."""
    profile = json.loads(profile_path.read_text())
    name = ctypes.util.find_library("seccomp")
    if not name:
        raise RuntimeError("libseccomp is not installed")
    lib = ctypes.CDLL(name)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(ACTIONS[profile["defaultAction"]])
    native = os.uname().machine
    for entry in profile.get("archMap", []):
        arch = entry["architecture"].removeprefix("SCMP_ARCH_").lower()
        if {"x86_64": "x86_64", "aarch64": "aarch64"}.get(arch) != native:
            continue
        for sub in entry.get("subArchitectures") or []:
            token = lib.seccomp_arch_resolve_name(sub.removeprefix("SCMP_ARCH_").lower().encode())
            if token:
                lib.seccomp_arch_add(ctx, token)  # -EEXIST or unsupported: fine
    count = 0
    for rule in profile["syscalls"]:
        action = _action(rule, int(profile.get("defaultErrnoRet", 1)))
        for syscall in rule["names"]:
            nr = lib.seccomp_syscall_resolve_name(syscall.encode())
            if nr < 0:
                continue  # not a syscall of this architecture
            if lib.seccomp_rule_add(ctx, action, nr, 0) == 0:
                count += 1
    rc = lib.seccomp_load(ctx)
    if rc != 0:
        raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")
    return count


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    count = load(Path(argv[0]))
    status = Path("/proc/self/status").read_text()
    nnp = next(
        (line.split()[1] for line in status.splitlines() if line.startswith("NoNewPrivs:")), "?"
    )
    print(
        f"compose_limits: seccomp profile {argv[0]} loaded ({count} rules), no_new_privs={nnp}",
        flush=True,
    )
    os.execvp(argv[2], argv[2:])
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
