"""The sandbox's layers one by one: what is active, what the zygote holds, how a sandbox
dies (deadline, close, zygote death, memory cgroup), the degraded modes, and the
seccomp tables against libseccomp's."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from graders.course import LoadedAssignment
from graders.notebooks import code_notebook
from graders.sandbox_api import SandboxCrashed, SandboxFactory, SandboxTimeout
from tests.support.isolation import layer_missing, require_root
from tests.support.paths import HW1_DIR, ROOT
from tests.support.sandbox import Secrets, grade_notebook, student_text, uid_processes
from worker.sandbox import cgroups, host_plan, landlock, launcher, seccomp, slots
from worker.sandbox.config import SandboxConfig, SandboxLimits
from worker.sandbox.process import PipeSandbox


def _exec(sandbox: PipeSandbox, source: str, timeout: float = 10.0) -> dict:
    return sandbox.request({"op": "exec", "index": 1, "source": source}, timeout=timeout)


def _wait_gone(uid: int, timeout: float = 3.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while uid_processes(uid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return uid_processes(uid)


def test_isolation_string_names_every_layer(
    secrets: Secrets, hw1: LoadedAssignment, factory: SandboxFactory, solution: bytes
) -> None:
    require_root()
    sandbox = launcher.start_sandbox(SandboxConfig())
    try:
        text = sandbox.isolation
    finally:
        sandbox.close()
    assert text.startswith("namespaces(mnt,net,pid,ipc,uts)+pivot_root+"), text
    assert f"uid {host_plan.sandbox_uid(launcher.worker_slot())}" in text
    for layer in ("rlimits", "seccomp"):
        assert layer in text.split("+"), text
    abi = landlock.abi_version()
    if abi:
        assert f"landlock(abi {abi})" in text
    usable = cgroups.usable(cgroups.discover())
    if usable:
        assert f"cgroup({','.join(c for c in ('memory', 'pids') if c in usable)})" in text
    # The job record gets the same string.
    report = grade_notebook(hw1, solution, factory)
    assert report.isolation == text
    assert report.score == 5


def test_plain_child_when_isolation_is_none(tmp_path: Path) -> None:
    sandbox = launcher.start_sandbox(SandboxConfig(submission_dir=tmp_path, isolation="none"))
    try:
        assert sandbox.isolation == "process+rlimits (no namespaces)"
        assert _exec(sandbox, "x = 1")["status"] == "ok"
    finally:
        sandbox.close()


def test_zygote_holds_nothing_of_the_grader(secrets: Secrets) -> None:
    zygote = launcher.get_zygote()
    environ = Path(f"/proc/{zygote.proc.pid}/environ").read_bytes().decode()
    assert "AUTOGRADER" not in environ and "s3cr3t" not in environ
    sandbox = launcher.start_sandbox(SandboxConfig())
    try:
        reply = _exec(
            sandbox,
            "import sys, torch\nprint(sorted(sys.modules))\nprint(torch.cuda.is_initialized())",
        )
    finally:
        sandbox.close()
    modules = eval(reply["output"].splitlines()[0])  # a list of names, printed by us
    for name in ("torch", "numpy", "protocol.codec", "worker.sandbox.child"):
        assert name in modules
    for name in modules:
        assert not name.startswith(("graders", "core", "api", "_dlp_", "sqlalchemy", "celery")), (
            name
        )
    assert reply["output"].splitlines()[1] == "False"


def test_deadline_kills_the_whole_sandbox(secrets: Secrets) -> None:
    sandbox = launcher.start_sandbox(SandboxConfig())
    _exec(
        sandbox,
        "import subprocess, os\n"
        "procs = [subprocess.Popen(['sleep', '300']) for _ in range(3)]\n"
        "if os.fork() == 0:\n    os.setsid()\n    import time; time.sleep(300)\n",
    )
    started = time.monotonic()
    with pytest.raises(SandboxTimeout):
        _exec(sandbox, "while True: pass", timeout=0.5)
    assert time.monotonic() - started < 3
    if os.geteuid() == 0:
        assert not _wait_gone(host_plan.sandbox_uid(launcher.worker_slot()))


def test_sandboxes_die_with_their_zygote(secrets: Secrets) -> None:
    zygote = launcher.get_zygote()
    sandbox = zygote.spawn(SandboxConfig())
    _exec(sandbox, "import subprocess\np = subprocess.Popen(['sleep', '300'])")
    zygote.proc.kill()
    zygote.proc.wait(5)
    with pytest.raises(SandboxCrashed):  # the parent-death signals travel down the chain
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            _exec(sandbox, "x = 1", timeout=5)
            time.sleep(0.05)
    sandbox.close()
    if os.geteuid() == 0:
        assert not _wait_gone(host_plan.sandbox_uid(launcher.worker_slot()))
    # The next sandbox comes from a fresh zygote.
    again = launcher.start_sandbox(SandboxConfig())
    try:
        assert _exec(again, "x = 2")["status"] == "ok"
        assert launcher.get_zygote() is not zygote
    finally:
        again.close()


def test_memory_cgroup_kill_is_reported_as_oom(secrets: Secrets) -> None:
    require_root()
    if "memory" not in cgroups.usable(cgroups.discover()):
        layer_missing("no writable memory cgroup")
    sandbox = launcher.start_sandbox(SandboxConfig(limits=SandboxLimits(memory_mb=1100)))
    # Each process stays under its address-space limit; together they pass the cgroup's
    # (which sits 25 % above the address-space limit).
    source = """
import os, time, numpy as np
for _ in range(5):
    if os.fork() == 0:
        a = np.ones(250 * 1024 * 1024 // 8)
        time.sleep(60)
time.sleep(1)
big = np.ones(450 * 1024 * 1024 // 8)
time.sleep(60)
"""
    with pytest.raises(SandboxCrashed) as caught:
        _exec(sandbox, source, timeout=30)
    assert caught.value.oom


def test_memory_error_is_oom(
    secrets: Secrets, hw1: LoadedAssignment, factory: SandboxFactory
) -> None:
    notebook = code_notebook("def early_stopping_epoch(*a, **k):\n    return bytearray(10 ** 11)\n")
    report = grade_notebook(hw1, notebook, factory)
    assert {t.outcome for t in report.tests if t.exercise == "early_stopping_epoch"} == {"oom"}


def test_public_helpers_and_submission_files(
    secrets: Secrets, hw1: LoadedAssignment, tmp_path: Path
) -> None:
    (tmp_path / "data.txt").write_text("from the submission")
    factory = launcher.sandbox_factory(public_dirs=(hw1.meta.public_dir,), submission_dir=tmp_path)
    sandbox = factory()
    try:
        reply = _exec(
            sandbox,
            "import os, sys\nprint(os.getcwd(), open('data.txt').read())\n"
            "print([p for p in sys.path if p.startswith('/public')])\n"
            "open('/tmp/scratch', 'w').write('ok')",
        )
    finally:
        sandbox.close()
    lines = reply["output"].splitlines()
    if "pivot_root" in sandbox.isolation:
        assert lines[0] == "/submission from the submission"
        assert lines[1] == "['/public/0']"
    assert reply["status"] == "ok"


# -- degraded modes ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["userns", "plain"])
def test_degraded_mode_still_guards(
    mode: str, secrets: Secrets, hw1: LoadedAssignment, solution: bytes
) -> None:
    extra_slot = slots.lease()  # a zygote of its own needs a slot of its own
    zygote = launcher.Zygote(slot=extra_slot.slot, mode=mode)
    config = SandboxConfig(public_dirs=(hw1.meta.public_dir,))
    try:
        sandbox = zygote.spawn(config)
        expected = {"userns": "userns(", "plain": "process+"}[mode]
        assert sandbox.isolation.startswith(expected), sandbox.isolation
        assert "seccomp" in sandbox.isolation
        reply = _exec(
            sandbox,
            f"""
import os, socket
out = []
for path in ({str(HW1_DIR / "tests.py")!r}, {str(secrets.canary_path)!r}, '/proc/self/environ'):
    try:
        out.append(open(path).read())
    except OSError:
        out.append('blocked')
for address in (('127.0.0.1', 5432), '/var/run/postgresql/.s.PGSQL.5432'):
    try:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        s = socket.socket(family)
        s.settimeout(1)
        s.connect(address)
        out.append('connected')
    except OSError:
        out.append('blocked')
out.append(sorted(k for k in os.environ if 'AUTOGRADER' in k))
print(out)
""",
        )
        sandbox.close()
        assert reply["output"].strip() == str(["blocked"] * 5 + [[]]), reply
        report = grade_notebook(hw1, solution, lambda: zygote.spawn(config))
        assert report.score == 5
        assert not secrets.leaked(student_text(report))
    finally:
        zygote.close()
        extra_slot.release()


NOBODY_SCRIPT = """
import json, sys
from pathlib import Path
from graders.course import load_assignment
from graders.intake import NOTEBOOK
from graders.notebooks import code_notebook
from graders.runner import grade
from worker.sandbox import launcher
from worker.sandbox.config import SandboxConfig

hw1 = load_assignment(Path(sys.argv[1]))
zygote = launcher.Zygote(slot=3)
config = SandboxConfig(public_dirs=(hw1.meta.public_dir,))
factory = lambda: zygote.spawn(config)
attack = code_notebook(
    "import os\\ntry:\\n    DATA = open(%r).read()\\nexcept OSError as e:\\n    DATA = repr(e)\\n"
    % (sys.argv[1] + '/tests.py'),
    "def label_smoothing_ce(*a, **k):\\n    raise RuntimeError(DATA)\\n")
bad = grade(hw1, NOTEBOOK, attack, factory)
good = grade(hw1, NOTEBOOK, Path(sys.argv[2]).read_bytes(), factory)
zygote.close()
print(json.dumps({"plan": zygote.plan, "isolation": good.isolation, "good": good.score,
                  "bad": [t.feedback for t in bad.tests]}))
"""


def test_without_root_user_namespaces_are_used(hw1: LoadedAssignment) -> None:
    """A worker that is not root (uid 65534) gets user namespaces and every other layer."""
    require_root()
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if not unshare or not setpriv:
        layer_missing("needs unshare and setpriv")
    runtime = os.path.realpath(sys.base_prefix)
    wrap = ""
    home = None
    if not host_plan.world_traversable(runtime):
        if not runtime.startswith("/root/"):
            pytest.skip("the Python runtime is not readable by other users")
        # A private /root for this test only (its own mount namespace): same content,
        # traversable by everyone, as the runtime of a real unprivileged worker would be.
        home = tempfile.mkdtemp(prefix="autograder-test-home-")
        os.chmod(home, 0o755)
        top = runtime.split("/")[2]
        os.mkdir(os.path.join(home, top))
        wrap = f"mount --bind /root/{top} {home}/{top} && mount --rbind {home} /root && "
    script = Path(tempfile.mkdtemp(prefix="autograder-test-script-")) / "nobody.py"
    script.write_text(NOBODY_SCRIPT)
    os.chmod(script.parent, 0o755)
    os.chmod(script, 0o644)
    command = (
        wrap + f"cd {ROOT} && {setpriv} --reuid=65534 --regid=65534 --clear-groups "
        f"env -i PATH=/usr/bin:/bin PYTHONPATH={ROOT} {sys.executable} {script} "
        f"{HW1_DIR} {HW1_DIR / 'notebooks' / 'solution.ipynb'}"
    )
    try:
        done = subprocess.run(
            [unshare, "-m", "--propagation", "private", "sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(script.parent, ignore_errors=True)
        if home:
            shutil.rmtree(home, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["plan"]["mode"] != "userns":
        layer_missing(f"user namespaces are not available to unprivileged users here: {result}")
    assert result["isolation"].startswith(
        "userns(uid 65534)+namespaces(mnt,net,pid,ipc,uts)+pivot_root+"
    ), result
    assert "seccomp" in result["isolation"]
    assert result["good"] == 5
    assert all(
        "No such file" in text or "not defined" in text or "is not" in text
        for text in result["bad"]
    ), result["bad"]


# -- the filters themselves ----------------------------------------------------------------
def test_seccomp_tables_match_libseccomp() -> None:
    name = ctypes.util.find_library("seccomp")
    if not name:
        layer_missing("libseccomp is not installed")
    lib = ctypes.CDLL(name)
    resolve = lib.seccomp_syscall_resolve_name_arch
    resolve.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    resolve.restype = ctypes.c_int
    for arch, table in seccomp.SYSCALLS.items():
        for syscall, number in table.items():
            assert resolve(seccomp.AUDIT_ARCH[arch], syscall.encode()) == number, (arch, syscall)
        missing = [
            n
            for n in seccomp.DENIED
            if n not in table and resolve(seccomp.AUDIT_ARCH[arch], n.encode()) >= 0
        ]
        assert not missing, (arch, missing)


@pytest.mark.parametrize("arch", sorted(seccomp.SYSCALLS))
def test_seccomp_program_builds(arch: str) -> None:
    program = seccomp.build_program(arch)
    assert len(seccomp.pack(program)) == 8 * len(program)
    assert program[-1][3] == seccomp.SECCOMP_RET_KILL_PROCESS


def test_runtime_binds_never_hold_the_course(tmp_path: Path) -> None:
    dirs, _ = host_plan.runtime_paths([str(ROOT / "reference")], [str(ROOT)])
    real_root = os.path.realpath(ROOT)
    for path in dirs:
        real = os.path.realpath(path)
        assert real != real_root and not real_root.startswith(real.rstrip("/") + "/"), path
        assert not real.startswith(os.path.realpath(ROOT / "reference")), path
    # A prefix that contains the project is split around it.
    prefix = tmp_path / "usr"
    for sub in ("bin", "lib", "src/app/reference", "src/other"):
        (prefix / sub).mkdir(parents=True)
    covered = host_plan._cover(
        str(prefix), [str(prefix / "src/app/reference")], [str(prefix / "src/app")]
    )
    assert sorted(covered) == sorted(str(prefix / s) for s in ("bin", "lib", "src/other"))


def test_process_of_a_student_fork_never_answers(secrets: Secrets) -> None:
    sandbox = launcher.start_sandbox(SandboxConfig())
    try:
        reply = _exec(sandbox, "import os\nchildren = [os.fork() for _ in range(3)]\nx = 1")
        assert reply["status"] == "ok"
        for _ in range(5):
            assert sandbox.request({"op": "defined"}, timeout=5)["names"]
    finally:
        sandbox.close()


def test_signals_from_the_sandbox_never_reach_out(secrets: Secrets) -> None:
    zygote = launcher.get_zygote()
    sandbox = launcher.start_sandbox(SandboxConfig())
    try:
        reply = _exec(
            sandbox,
            f"import os, signal\nfor pid in (-1, 0, {os.getpid()}, "
            f"{zygote.proc.pid}):\n    try:\n        os.kill(pid, 9)\n"
            "    except OSError:\n        pass\n",
        )
        assert reply["status"] == "ok"
    finally:
        sandbox.close()
    assert zygote.alive()
    os.kill(os.getpid(), 0)
    assert signal.SIGKILL  # we are still here to say so


def test_each_grading_process_of_a_host_leases_its_own_slot() -> None:
    """Two processes (of one worker or of two) never share a sandbox uid."""
    first, second = slots.lease(), slots.lease()
    try:
        assert first.slot != second.slot
        with pytest.raises(slots.SlotTaken):
            slots.lease(first.slot)
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        workers = [
            context.Process(target=_grade_in_a_fresh_process, args=(queue,)) for _ in range(2)
        ]
        for process in workers:
            process.start()
        leased = [queue.get(timeout=120) for _ in workers]
        for process in workers:
            process.join(20)
        assert len({slot for slot, _ in leased}) == 2
        assert not {first.slot, second.slot} & {slot for slot, _ in leased}
        for slot, isolation in leased:
            if "uid " in isolation:  # root: each slot's sandboxes run as its own uid
                assert f"uid {host_plan.sandbox_uid(slot)}" in isolation, isolation
    finally:
        first.release()
        second.release()
    again = slots.lease(first.slot)  # a released (or dead process's) slot is free again
    again.release()


def _grade_in_a_fresh_process(queue: Any) -> None:
    """A grading process: its sandbox runs while the other process's does."""
    sandbox = launcher.start_sandbox(SandboxConfig())
    try:
        _exec(sandbox, "x = 1")
        queue.put((launcher.worker_slot(), sandbox.isolation))
        time.sleep(2.0)  # both sandboxes alive at the same time
    finally:
        sandbox.close()
        launcher.shutdown()
