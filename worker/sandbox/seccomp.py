"""A seccomp deny-list, built by hand as a classic BPF program (no libseccomp needed).

The filter allows every system call except the ones below, which a notebook never
needs and which are the usual ways out of a sandbox or into the kernel's rarely used
corners: tracing other processes, mounting, namespaces, kernel modules, keyrings,
BPF, perf, io_uring (which would bypass this filter), ... A denied call fails with
EPERM. `clone` with a namespace flag is denied too, `clone3` answers ENOSYS (glibc
then falls back to `clone`, whose flags this filter can read), and socket families
other than the few a sandbox may use answer EAFNOSUPPORT.

Syscall numbers differ per architecture: the tables hold x86_64 and aarch64 (checked
against libseccomp's own tables in tests/sandbox/test_layers.py). Any other
architecture, and the x32 / i386 entry points on x86_64, are refused.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

# -- constants from <linux/seccomp.h>, <linux/filter.h>, <linux/audit.h> -----------
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
BPF_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

# offsets in struct seccomp_data (little-endian: the low word of args[i] comes first)
OFF_NR = 0
OFF_ARCH = 4


def _arg_low(i: int) -> int:
    return 16 + 8 * i


AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
TIOCSTI = 0x5412
CLONE_NAMESPACE_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
    | 0x00000080  # CLONE_NEWTIME
)

#: Denied with EPERM.
DENIED = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "kcmp",
    "pidfd_getfd",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    "iopl",
    "ioperm",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "vhangup",
    "uselib",
    "sethostname",
    "setdomainname",
    "nfsservctl",
    "fanotify_init",
)

SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "ptrace": 101,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "process_madvise": 440,
        "kcmp": 312,
        "pidfd_getfd": 438,
        "mount": 165,
        "umount2": 166,
        "pivot_root": 155,
        "chroot": 161,
        "unshare": 272,
        "setns": 308,
        "move_mount": 429,
        "open_tree": 428,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "mount_setattr": 442,
        "kexec_load": 246,
        "kexec_file_load": 320,
        "init_module": 175,
        "finit_module": 313,
        "delete_module": 176,
        "bpf": 321,
        "perf_event_open": 298,
        "userfaultfd": 323,
        "keyctl": 250,
        "add_key": 248,
        "request_key": 249,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "reboot": 169,
        "swapon": 167,
        "swapoff": 168,
        "acct": 163,
        "quotactl": 179,
        "quotactl_fd": 443,
        "syslog": 103,
        "open_by_handle_at": 304,
        "name_to_handle_at": 303,
        "lookup_dcookie": 212,
        "iopl": 172,
        "ioperm": 173,
        "settimeofday": 164,
        "clock_settime": 227,
        "clock_adjtime": 305,
        "adjtimex": 159,
        "vhangup": 153,
        "uselib": 134,
        "sethostname": 170,
        "setdomainname": 171,
        "nfsservctl": 180,
        "fanotify_init": 300,
        "clone": 56,
        "clone3": 435,
        "socket": 41,
        "ioctl": 16,
    },
    "aarch64": {
        "ptrace": 117,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "process_madvise": 440,
        "kcmp": 272,
        "pidfd_getfd": 438,
        "mount": 40,
        "umount2": 39,
        "pivot_root": 41,
        "chroot": 51,
        "unshare": 97,
        "setns": 268,
        "move_mount": 429,
        "open_tree": 428,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "mount_setattr": 442,
        "kexec_load": 104,
        "kexec_file_load": 294,
        "init_module": 105,
        "finit_module": 273,
        "delete_module": 106,
        "bpf": 280,
        "perf_event_open": 241,
        "userfaultfd": 282,
        "keyctl": 219,
        "add_key": 217,
        "request_key": 218,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "reboot": 142,
        "swapon": 224,
        "swapoff": 225,
        "acct": 89,
        "quotactl": 60,
        "quotactl_fd": 443,
        "syslog": 116,
        "open_by_handle_at": 265,
        "name_to_handle_at": 264,
        "lookup_dcookie": 18,
        "settimeofday": 170,
        "clock_settime": 112,
        "clock_adjtime": 266,
        "adjtimex": 171,
        "vhangup": 58,
        "sethostname": 161,
        "setdomainname": 162,
        "nfsservctl": 42,
        "fanotify_init": 262,
        "clone": 220,
        "clone3": 435,
        "socket": 198,
        "ioctl": 29,
    },
}
AUDIT_ARCH = {"x86_64": AUDIT_ARCH_X86_64, "aarch64": AUDIT_ARCH_AARCH64}


def machine() -> str:
    name = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(name, name)


def supported() -> bool:
    return machine() in SYSCALLS


def _ret(value: int) -> tuple[int, int, int, int]:
    return (BPF_RET_K, 0, 0, value)


def build_program(
    arch: str, families: tuple[int, ...] = (AF_UNIX, AF_INET, AF_INET6)
) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions.

    families: the socket families `socket()` may create; any other answers
    EAFNOSUPPORT (socketpair() is not affected).
    """
    table = SYSCALLS[arch]
    deny_eperm = SECCOMP_RET_ERRNO | errno.EPERM
    denied = sorted({table[name] for name in DENIED if name in table})

    # Blocks are laid out in order; jumps are computed from the final positions.
    # (code, jt, jf, k); a jump target is a label until the layout is final.
    prog: list[tuple[int, int | str, int | str, int]] = []
    labels: dict[str, int] = {}

    def label(name: str) -> None:
        labels[name] = len(prog)

    def jump(code: int, k: int, jt: str, jf: str) -> None:
        prog.append((code, jt, jf, k))

    prog.append((BPF_LD_W_ABS, 0, 0, OFF_ARCH))
    jump(BPF_JEQ_K, AUDIT_ARCH[arch], "next", "kill")
    prog.append((BPF_LD_W_ABS, 0, 0, OFF_NR))
    if arch == "x86_64":
        jump(BPF_JGE_K, X32_SYSCALL_BIT, "enosys", "next")
    for nr in denied:
        jump(BPF_JEQ_K, nr, "eperm", "next")
    jump(BPF_JEQ_K, table["clone3"], "enosys", "next")
    jump(BPF_JEQ_K, table["clone"], "clone", "next")
    jump(BPF_JEQ_K, table["socket"], "socket", "next")
    jump(BPF_JEQ_K, table["ioctl"], "ioctl", "allow")

    label("clone")
    prog.append((BPF_LD_W_ABS, 0, 0, _arg_low(0)))
    jump(BPF_JSET_K, CLONE_NAMESPACE_FLAGS, "eperm", "allow")

    label("socket")
    prog.append((BPF_LD_W_ABS, 0, 0, _arg_low(0)))
    for family in families:
        jump(BPF_JEQ_K, family, "allow", "next")
    prog.append(_ret(SECCOMP_RET_ERRNO | errno.EAFNOSUPPORT))

    label("ioctl")
    prog.append((BPF_LD_W_ABS, 0, 0, _arg_low(1)))
    jump(BPF_JEQ_K, TIOCSTI, "eperm", "allow")

    label("allow")
    prog.append(_ret(SECCOMP_RET_ALLOW))
    label("eperm")
    prog.append(_ret(deny_eperm))
    label("enosys")
    prog.append(_ret(SECCOMP_RET_ERRNO | errno.ENOSYS))
    label("kill")
    prog.append(_ret(SECCOMP_RET_KILL_PROCESS))

    out: list[tuple[int, int, int, int]] = []
    for pos, (code, jt, jf, k) in enumerate(prog):

        def offset(target: int | str, pos: int = pos) -> int:
            if isinstance(target, int):
                return target
            if target == "next":
                return 0
            delta = labels[target] - pos - 1
            if not 0 <= delta <= 255:
                raise ValueError(f"seccomp jump to {target} out of range ({delta})")
            return delta

        out.append((code, offset(jt), offset(jf), k))
    return out


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def pack(program: list[tuple[int, int, int, int]]) -> bytes:
    """The program as the kernel reads it (for tests and for curious readers)."""
    return b"".join(struct.pack("=HBBI", *ins) for ins in program)


def install(families: tuple[int, ...] = (AF_UNIX, AF_INET, AF_INET6)) -> None:
    """Install the filter on this process (all its threads). Raises OSError on failure.

    PR_SET_NO_NEW_PRIVS must be set (it is, here) unless the caller is privileged.
    """
    arch = machine()
    if arch not in SYSCALLS:
        raise OSError(errno.ENOSYS, f"no seccomp table for {arch}")
    program = build_program(arch, families)
    filters = (_SockFilter * len(program))(*[_SockFilter(*ins) for ins in program])
    fprog = _SockFprog(len(program), ctypes.cast(filters, ctypes.POINTER(_SockFilter)))
    libc = ctypes.CDLL(None, use_errno=True)
    c_long = ctypes.c_long
    if libc.prctl(PR_SET_NO_NEW_PRIVS, c_long(1), c_long(0), c_long(0), c_long(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"PR_SET_NO_NEW_PRIVS: {errno.errorcode.get(err, err)}")
    nr = {"x86_64": 317, "aarch64": 277}[arch]
    if (
        libc.syscall(
            c_long(nr),
            c_long(SECCOMP_SET_MODE_FILTER),
            c_long(SECCOMP_FILTER_FLAG_TSYNC),
            ctypes.byref(fprog),
        )
        != 0
    ):
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: {errno.errorcode.get(err, err)}")
