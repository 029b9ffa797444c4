"""What a forked sandbox does to itself before the student's first line runs.

Python 3.11 has no os.unshare, mount or pivot_root: they are called through ctypes.
The work is split in two so that the slow part happens while no job waits:

- `Jail.prepare()` runs in a spare sandbox as soon as it is forked: new namespaces,
  the cgroup, and a root file system made of read-only binds of the Python runtime
  (at the same paths as on the host, so everything the zygote imported keeps
  working), /etc with a few harmless files and /dev with null/zero/random.
- `Jail.finish()` runs when a job claims the spare: the submission at /submission,
  the public helpers at /public/<n>, a size-capped /tmp, pivot_root, then the
  one-way steps: rlimits, an unprivileged uid, no_new_privs, Landlock, seccomp and
  an emptied environment.

Every layer that works is named in the isolation string; a layer that fails is left
out (and the next ones adapt: without pivot_root, Landlock rules use host paths).
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

from worker.sandbox import cgroups, landlock, seccomp
from worker.sandbox.config import SandboxLimits
from worker.sandbox.host_plan import Plan
from worker.sandbox.rootfs import (
    COPY_LIMIT,
    DEV_TMPFS,
    ROOT_TMPFS,
    bind,
    copy_tree,
    mirror,
    world_readable,
    write_file,
)
from worker.sandbox.syscalls import (
    MNT_DETACH,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    NAMESPACES,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    die_with_parent,
    drop_capabilities,
    mount,
    pivot_root,
    prctl,
    sethostname,
    umount,
    unshare,
)

SANDBOX_HOSTNAME = "sandbox"

ENV_BASE = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
    "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1",
    "MPLBACKEND": "Agg",
}


class Jail:
    """One sandbox's isolation, applied to the calling (forked) process."""

    def __init__(
        self,
        plan: Plan,
        group: cgroups.SandboxCgroup | None = None,
        scratch: str | None = None,
        pid_namespace: bool = False,
        user_namespace: bool = False,
    ) -> None:
        self.plan = plan
        self.group = group
        self.scratch = scratch
        self.layers: dict[str, str] = {}
        self.problems: list[str] = []
        self.namespaces: list[str] = ["pid"] if pid_namespace else []
        self.user_namespace = user_namespace
        self.root = ""  # the new root while it is built, "" when there is none
        self.pivoted = False
        self.dev_nodes: list[str] = []
        #: time.monotonic() after each step of finish(), for the benchmark
        self.stamps: dict[str, float] = {}

    def _stamp(self, name: str) -> None:
        self.stamps[name] = time.monotonic()

    def _fail(self, what: str, exc: BaseException) -> None:
        self.problems.append(f"{what}: {exc}")

    # -- phase 1: in the spare, before any job ------------------------------------------
    def prepare(self) -> None:
        os.setsid()
        # Under memory pressure the kernel kills a sandbox before anything else.
        with contextlib.suppress(OSError):
            write_file("/proc/self/oom_score_adj", "1000")
        if self.group is not None:
            try:
                self.group.join()
            except OSError as exc:
                self._fail("cgroup", exc)
                self.group = None
        if self.plan.mode in ("root", "userns"):
            self._unshare()
            if "mnt" in self.namespaces:
                try:
                    self._build_root()
                except OSError as exc:
                    self._fail("root file system", exc)
                    self.root = ""

    def _unshare(self) -> None:
        try:
            unshare(sum(flag for _, flag in NAMESPACES))
            self.namespaces += [name for name, _ in NAMESPACES]
        except OSError:
            for name, flag in NAMESPACES:
                try:
                    unshare(flag)
                    self.namespaces.append(name)
                except OSError as exc:
                    self._fail(f"{name} namespace", exc)
        if "uts" in self.namespaces:
            with contextlib.suppress(OSError):
                sethostname(SANDBOX_HOSTNAME)

    def _build_root(self) -> None:
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        root = self.plan.staging
        mount("sandbox-root", root, "tmpfs", MS_NOSUID | MS_NODEV, ROOT_TMPFS)
        self.root = root
        for path in self.plan.runtime:
            if os.path.islink(path) and os.path.dirname(path) == "/":
                if not os.path.lexists(root + path):
                    os.symlink(os.readlink(path), root + path)
        self._bind_runtime(lambda path: not (os.path.islink(path) and os.path.dirname(path) == "/"))
        etc = root + "/etc"
        os.makedirs(etc, 0o755, exist_ok=True)
        uid, gid = self._inner_ids()
        write_file(
            etc + "/passwd",
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"sandbox:x:{uid}:{gid}:sandbox:/tmp:/usr/sbin/nologin\n",
        )
        write_file(etc + "/group", f"root:x:0:\nsandbox:x:{gid}:\n")
        write_file(etc + "/hosts", "127.0.0.1 localhost\n::1 localhost\n")
        write_file(etc + "/hostname", SANDBOX_HOSTNAME + "\n")
        for name in ("submission", "public", "tmp", "dev", "proc"):
            os.makedirs(root + "/" + name, 0o755, exist_ok=True)
        mount("sandbox-dev", root + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, DEV_TMPFS)
        for name in ("null", "zero", "full", "random", "urandom"):
            if os.path.exists("/dev/" + name):
                write_file(f"{root}/dev/{name}", "")
                bind("/dev/" + name, f"{root}/dev/{name}", writable=True)
                self.dev_nodes.append("/dev/" + name)
        os.mkdir(root + "/dev/shm", 0o1777)
        for link, target in (
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ):
            os.symlink(target, f"{root}/dev/{link}")

    def _inner_ids(self) -> tuple[int, int]:
        if self.plan.mode == "root":
            return self.plan.uid, self.plan.gid
        if self.user_namespace:
            return 0, 0
        return os.getuid(), os.getgid()

    # -- phase 2: the job is known ----------------------------------------------------------
    def finish(self, job: dict[str, Any], keep_fds: tuple[int, ...]) -> str:
        """Apply everything job-specific and every one-way step; return the layers."""
        limits = SandboxLimits.from_wire(job.get("limits"))
        device = str(job.get("device", "cpu"))
        memory = limits.memory_mb * 1024 * 1024
        # The cgroup sits above RLIMIT_AS: an allocation then fails fast with a clean
        # MemoryError, instead of the whole cgroup reclaiming (thrashing) at the same
        # limit; the cgroup still bounds what RLIMIT_AS does not see (tmpfs, children).
        cgroup_memory = memory + max(256 * 1024 * 1024, memory // 4)
        if self.group is not None:
            try:
                self.group.set_limits(cgroup_memory, limits.processes)
                self.layers["cgroup"] = f"cgroup({','.join(self.group.controllers)})"
            except OSError as exc:
                self._fail("cgroup limits", exc)
        self._stamp("cgroup")
        submission = job.get("submission_dir")
        public = [str(p) for p in job.get("public_dirs", [])]
        tmp_mb = limits.tmp_mb
        if self.root:
            try:
                inside_public = self._mount_job(submission, public, tmp_mb, device)
                self._stamp("mounts")
                self._pivot()
                self._stamp("pivot_root")
                public_paths = inside_public
                workdir = "/submission"
            except OSError as exc:
                self._fail("pivot_root", exc)
                self.pivoted = False
        if not self.pivoted:
            public_paths = [p for p in public if os.path.isdir(p)]
            workdir = (
                submission if submission and os.path.isdir(submission) else (self.scratch or "/")
            )
        os.chdir(workdir)
        self._close_fds(keep_fds)
        self._rlimits(limits, device)
        self._drop_privileges()
        self._stamp("fds+rlimits+uid")
        self._restrict(submission, public, device)
        self._environment(device)
        self._stamp("landlock+seccomp+env")
        sys.path[:] = [
            workdir,
            *public_paths,
            *[p for p in sys.path if p not in ("", "/", workdir, *public_paths)],
        ]
        sys.dont_write_bytecode = True
        os.umask(0o022)
        return self.describe()

    def _mount_job(
        self, submission: str | None, public: list[str], tmp_mb: int, device: str
    ) -> list[str]:
        root = self.root
        if submission and os.path.isdir(submission):
            if self.plan.mode != "root" or world_readable(submission):
                bind(submission, root + "/submission")
            else:
                # The sandbox's uid could not read it: a private read-only copy instead.
                mount(
                    "sandbox-submission",
                    root + "/submission",
                    "tmpfs",
                    MS_NOSUID | MS_NODEV,
                    f"size={COPY_LIMIT},nr_inodes=4096,mode=0755",
                )
                copy_tree(submission, root + "/submission")
                mount(
                    None, root + "/submission", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
                )
        inside: list[str] = []
        for n, path in enumerate(public):
            if not os.path.isdir(path):
                continue
            target = f"{root}/public/{n}"
            os.mkdir(target, 0o755)
            if self.plan.mode != "root" or world_readable(path):
                bind(path, target)
            else:
                copy_tree(path, target)
            inside.append(f"/public/{n}")
        mount(
            "sandbox-tmp",
            root + "/tmp",
            "tmpfs",
            MS_NOSUID | MS_NODEV,
            f"size={tmp_mb}m,nr_inodes=4096,mode=1777",
        )
        self._rebind_under("/tmp/")
        mount(
            "sandbox-shm",
            root + "/dev/shm",
            "tmpfs",
            MS_NOSUID | MS_NODEV | MS_NOEXEC,
            f"size={tmp_mb}m,nr_inodes=1024,mode=1777",
        )
        if device == "cuda":
            self._gpu_nodes()
            with contextlib.suppress(OSError):
                mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        return inside

    def _bind_runtime(self, wanted: Callable[[str], bool]) -> None:
        """Bind the runtime and the project's code, read-only, at their host paths."""
        root = self.root
        for paths, is_dir in (
            (self.plan.runtime, True),
            (self.plan.project, True),
            (self.plan.runtime_files, False),
        ):
            for path in paths:
                if wanted(path):
                    real = mirror(root, path, is_dir=is_dir)
                    bind(real, root + real)

    def _rebind_under(self, prefix: str) -> None:
        """Bind again what a scratch mount at `prefix` just hid: the project and its venv
        may live under /tmp (a CI checkout), and the sandbox's own /tmp must not hide them.
        """
        self._bind_runtime(lambda path: path.startswith(prefix))

    def _gpu_nodes(self) -> None:
        root = self.root
        try:
            names = sorted(os.listdir("/dev"))
        except OSError:
            return
        for name in names:
            if not name.startswith("nvidia"):
                continue
            source = "/dev/" + name
            if os.path.isdir(source):
                os.makedirs(root + source, 0o755, exist_ok=True)
                bind(source, root + source, writable=True)
            else:
                write_file(root + source, "")
                bind(source, root + source, writable=True)
            self.dev_nodes.append(source)

    def _pivot(self) -> None:
        root = self.root
        mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, ROOT_TMPFS)
        os.chdir(root)
        pivot_root(".", ".")
        umount(".", MNT_DETACH)
        os.chdir("/")
        self.pivoted = True
        self.layers["pivot_root"] = "pivot_root"

    def _close_fds(self, keep: tuple[int, ...]) -> None:
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            if fd != null:
                os.dup2(null, fd)
        low = 3
        for fd in sorted({f for f in keep if f > 2}):
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, 1 << 20)

    def _rlimits(self, limits: SandboxLimits, device: str) -> None:
        mb = 1024 * 1024
        cpu = limits.cpu_seconds
        wanted = [
            (resource.RLIMIT_CPU, cpu, cpu + 1),
            (resource.RLIMIT_FSIZE, limits.file_size_mb * mb, None),
            (resource.RLIMIT_NOFILE, limits.open_files, None),
            (resource.RLIMIT_CORE, 0, None),
        ]
        if device != "cuda":  # CUDA reserves far more address space than it uses
            wanted.append((resource.RLIMIT_AS, limits.memory_mb * mb, None))
        if self.plan.mode == "root" or self.user_namespace:
            # RLIMIT_NPROC counts per user: only meaningful for a uid of our own.
            wanted.append((resource.RLIMIT_NPROC, limits.processes, None))
        try:
            for which, soft, hard in wanted:
                resource.setrlimit(which, (soft, soft if hard is None else hard))
            self.layers["rlimits"] = "rlimits"
        except (OSError, ValueError) as exc:
            self._fail("rlimits", exc)

    def _drop_privileges(self) -> None:
        if os.geteuid() == 0 and not self.user_namespace and self.plan.switch_uid:
            try:
                os.setgroups([])
                os.setresgid(self.plan.gid, self.plan.gid, self.plan.gid)
                os.setresuid(self.plan.uid, self.plan.uid, self.plan.uid)
                self.layers["uid"] = f"uid {self.plan.uid}"
            except OSError as exc:
                self._fail("uid", exc)
        if os.geteuid() == 0:
            # Still root (inside a user namespace, or no uid of our own): no capability.
            try:
                drop_capabilities()
                self.layers["uid"] = "no capabilities"
            except OSError as exc:
                self._fail("capabilities", exc)
        # A change of credentials clears the parent-death signal: set it again.
        with contextlib.suppress(OSError):
            die_with_parent()
        with contextlib.suppress(OSError):
            prctl(PR_SET_DUMPABLE, 0)
        try:
            prctl(PR_SET_NO_NEW_PRIVS, 1)
        except OSError as exc:
            self._fail("no_new_privs", exc)

    def _landlock_rules(
        self, submission: str | None, public: list[str], device: str
    ) -> list[tuple[str, int]]:
        read = landlock.READ
        rules: list[tuple[str, int]] = []
        everything = landlock.fs_rights(self.plan.landlock_abi)
        if self.pivoted:
            rules.append(("/", landlock.READ_DIR))
            rules += [
                ("/etc", read),
                ("/submission", read),
                ("/public", read),
                ("/tmp", everything),
                ("/dev/shm", everything),
            ]
            if device == "cuda":
                rules.append(("/proc", read))
        else:
            if submission:
                rules.append((submission, read))
            rules += [(p, read) for p in public]
            if self.scratch:
                rules.append((self.scratch, everything))
        rules += [(p, read) for p in self.plan.runtime]
        rules += [(p, read) for p in self.plan.project]
        rules += [(p, landlock.READ_FILE) for p in self.plan.runtime_files]
        rules += [
            (p, landlock.DEVICE)
            for p in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
        ]
        if device == "cuda":
            rules += [
                (p, landlock.DEVICE | landlock.READ_DIR) for p in self.dev_nodes if "nvidia" in p
            ]
        return rules

    def _restrict(self, submission: str | None, public: list[str], device: str) -> None:
        if self.plan.landlock_abi > 0:
            try:
                abi = landlock.restrict(
                    self._landlock_rules(submission, public, device), self.plan.landlock_abi
                )
                self.layers["landlock"] = f"landlock(abi {abi})"
            except OSError as exc:
                self._fail("landlock", exc)
        if self.plan.seccomp:
            # Internet sockets only in a network namespace of its own (a loopback that is
            # down); unix sockets only under a root of its own (else a host service's
            # socket file would be reachable). socketpair() always works.
            families: tuple[int, ...] = (seccomp.AF_UNIX,) if self.pivoted else ()
            if "net" in self.namespaces:
                families += (seccomp.AF_INET, seccomp.AF_INET6)
            try:
                seccomp.install(families)
                self.layers["seccomp"] = "seccomp"
            except OSError as exc:
                self._fail("seccomp", exc)

    def _environment(self, device: str) -> None:
        cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ.clear()
        os.environ.update(ENV_BASE)
        if not self.pivoted and self.scratch:
            os.environ["HOME"] = os.environ["TMPDIR"] = self.scratch
        if device == "cuda":
            os.environ["AUTOGRADER_SANDBOX_DEVICE"] = "cuda"
            if cuda is not None:
                os.environ["CUDA_VISIBLE_DEVICES"] = cuda
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        self.layers["env"] = "env"

    def describe(self) -> str:
        parts = []
        if self.user_namespace:
            parts.append(f"userns(uid {self.plan.uid})")
        if self.namespaces:
            order = ["mnt", "net", "pid", "ipc", "uts"]
            names = [n for n in order if n in self.namespaces]
            parts.append(f"namespaces({','.join(names)})")
        else:
            parts.append("process")
        for key in ("pivot_root", "uid", "rlimits", "cgroup", "seccomp", "landlock"):
            if key in self.layers:
                parts.append(self.layers[key])
        return "+".join(parts)
