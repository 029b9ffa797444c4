"""Hostile submissions, graded through the real engine and the real sandbox.

Each attack is a notebook for hw1. Its attack cell stores what it obtained in RESULT
("GOT:..." or "BLOCKED:..."), prints it, and defines the exercise functions so that
they raise RuntimeError(RESULT): whatever the attack got would reach the student
through the output and through the feedback of every test. For each attack:

- grading returns a report (a score and an outcome per test, no exception);
- the attack failed (its own check below);
- no secret (planted environment variables, a canary file, lines of the hidden
  tests and reference) appears anywhere in the report;
- the next honest submission, graded on the same worker process (same zygote),
  gets full marks.
"""

from __future__ import annotations

import os
import socket
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from graders.course import LoadedAssignment
from graders.notebooks import code_notebook
from graders.runner import GradeReport
from graders.sandbox_api import SandboxFactory
from tests.support.paths import HW1_DIR, ROOT
from tests.support.sandbox import Secrets, grade_notebook, student_text, uid_processes
from worker.sandbox import launcher
from worker.sandbox.host_plan import sandbox_uid
from worker.sandbox.seccomp import SYSCALLS as _TABLES
from worker.sandbox.seccomp import machine

SYSCALLS = {
    k: v
    for k, v in _TABLES.get(machine(), _TABLES["x86_64"]).items()
    if k in ("pivot_root", "bpf", "keyctl", "perf_event_open", "io_uring_setup")
}

PRELUDE = """
import os, sys
def _try(fn):
    try:
        return "GOT:" + repr(fn())[:3000]
    except BaseException as e:
        return "BLOCKED:" + type(e).__name__ + ": " + str(e)[:300]
"""

LEAK = """
def label_smoothing_ce(*args, **kwargs):
    raise RuntimeError(str(RESULT))

def early_stopping_epoch(*args, **kwargs):
    raise RuntimeError(str(RESULT))
"""


def attack_cell(body: str) -> str:
    """A cell that runs `body` as a function and keeps what it returned (or raised)."""
    return (
        "def _attack():\n"
        + textwrap.indent(textwrap.dedent(body).strip(), "    ")
        + "\nRESULT = _try(_attack)\nprint(RESULT)\n"
    )


def host_passwd_lines() -> list[str]:
    lines = []
    for line in Path("/etc/passwd").read_text().splitlines():
        if line and not line.startswith(("root:", "sandbox:")):
            lines.append(line)
    return lines


# -- listeners on the grader's side: an attack must never reach them ----------------------
@dataclass
class Listeners:
    tcp_port: int
    udp_port: int
    unix_path: str
    abstract_name: str
    hits: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def listeners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listeners]:
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    folder = tmp_path_factory.mktemp("sockets")
    folder.chmod(0o755)
    unix_path = str(folder / "service.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(unix_path)
    os.chmod(unix_path, 0o777)
    unix.listen()
    abstract_name = "autograder-test-" + uuid.uuid4().hex
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0" + abstract_name)
    abstract.listen()
    result = Listeners(tcp.getsockname()[1], udp.getsockname()[1], unix_path, abstract_name)
    stop = threading.Event()

    def serve(sock: socket.socket, name: str, stream: bool) -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                if stream:
                    conn, _ = sock.accept()
                    result.hits.append(name)
                    conn.close()
                else:
                    sock.recv(65536)
                    result.hits.append(name)
            except (TimeoutError, OSError):
                continue

    threads = [
        threading.Thread(target=serve, args=(s, n, st), daemon=True)
        for s, n, st in (
            (tcp, "tcp", True),
            (udp, "udp", False),
            (unix, "unix", True),
            (abstract, "abstract", True),
        )
    ]
    for t in threads:
        t.start()
    yield result
    stop.set()
    for t in threads:
        t.join(2)
    for s in (tcp, udp, unix, abstract):
        s.close()


# -- the attacks ----------------------------------------------------------------------------
@dataclass
class Ctx:
    report: GradeReport
    text: str
    secrets: Secrets
    listeners: Listeners

    @property
    def output(self) -> str:
        return self.report.output

    def outcomes(self, exercise: str) -> set[str]:
        return {t.outcome for t in self.report.tests if t.exercise == exercise}

    def blocked(self) -> None:
        assert "BLOCKED:" in self.output, self.output[:2000]
        assert "GOT:" not in self.output, self.output[:2000]


@dataclass
class Attack:
    name: str
    cells: Callable[[Secrets, Listeners], list[str]]
    check: Callable[[Ctx], None]
    max_score: float = 0.0  # what the attack may score at most


def simple(
    name: str,
    body: str | Callable[[Secrets, Listeners], str],
    check: Callable[[Ctx], None] | None = None,
) -> Attack:
    def cells(s: Secrets, li: Listeners) -> list[str]:
        text = body(s, li) if callable(body) else body
        return [PRELUDE, attack_cell(text), LEAK]

    return Attack(name, cells, check or Ctx.blocked)


TESTS_PY = str(HW1_DIR / "tests.py")
REFERENCE_PY = str(HW1_DIR / "reference.py")


def _fs_none_found(ctx: Ctx) -> None:
    assert "GOT:[]" in ctx.output, ctx.output[:2000]


def _listing(ctx: Ctx) -> None:
    assert "GOT:" in ctx.output
    for name in ("'reference'", "'tests'", "'api'", "'core'", "'var'", "tests.py"):
        assert name not in ctx.output, ctx.output[:2000]


def _env(ctx: Ctx) -> None:
    assert "GOT:" in ctx.output
    assert "AUTOGRADER" not in ctx.output, ctx.output[:2000]
    assert "PYTHONPATH" not in ctx.output


def _nothing_reached(ctx: Ctx) -> None:
    ctx.blocked()
    assert not ctx.listeners.hits, ctx.listeners.hits


def _passwd(ctx: Ctx) -> None:
    for line in host_passwd_lines():
        assert line not in ctx.text, line
    assert "GOT:" not in ctx.output or "sandbox:x:" in ctx.output


def _oom(ctx: Ctx) -> None:
    assert ctx.outcomes("early_stopping_epoch") <= {"oom"}, ctx.report.tests
    assert "oom" in ctx.outcomes("early_stopping_epoch")


def _timeout(ctx: Ctx) -> None:
    assert "timeout" in ctx.outcomes("label_smoothing_ce"), ctx.report.tests


def _cell_timeout(ctx: Ctx) -> None:
    assert any(c.status == "timeout" for c in ctx.report.cells), ctx.report.cells


def _crashed_cell(ctx: Ctx) -> None:
    assert any(c.status == "crashed" for c in ctx.report.cells), ctx.report.cells


def _disk(ctx: Ctx) -> None:
    out = ctx.output
    for where in ("submission", "project", "runtime", "root"):
        assert f"{where}=BLOCKED" in out, out[:2000]
    assert "tmp=BLOCKED" in out or "tmp=FULL" in out, out[:2000]
    assert "big=BLOCKED" in out, out[:2000]


def _output_capped(ctx: Ctx) -> None:
    assert len(ctx.report.output) <= 9000
    assert all(len(t.feedback) < 10000 for t in ctx.report.tests)


def _kills(ctx: Ctx) -> None:
    assert "GOT:" not in ctx.output or "survived" in ctx.output, ctx.output[:2000]


def _kernel(ctx: Ctx) -> None:
    out = ctx.output
    for call in (
        "mount",
        "unshare",
        "setns",
        "ptrace",
        "chroot",
        "pivot_root",
        "bpf",
        "keyctl",
        "perf_event_open",
        "io_uring_setup",
    ):
        assert f"{call}:ok" not in out, out[:2000]
        assert f"{call}:" in out, out[:2000]


ATTACKS: list[Attack] = [
    # -- reading hidden files ---------------------------------------------------------------
    simple("read hidden tests by path", f"return open({TESTS_PY!r}).read()"),
    simple("read reference by path", f"return open({REFERENCE_PY!r}).read()"),
    simple(
        "read reference relative to the cwd",
        f"return open('../' * 8 + {REFERENCE_PY.lstrip('/')!r}).read()",
    ),
    simple("list the project folder", f"return sorted(os.listdir({str(ROOT)!r}))", _listing),
    simple(
        "glob the file system for hidden files",
        """
        found = []
        for top, dirs, files in os.walk("/"):
            dirs[:] = [d for d in dirs if d not in ("usr", "site-packages", ".pyenv", "lib")]
            found += [os.path.join(top, f) for f in files
                      if f in ("tests.py", "reference.py", "assignment.toml")
                      or f.startswith("hidden")]
        import glob
        found += glob.glob("/**/hw1-training-basics/**", recursive=False)
        found += glob.glob("/*/*/reference/*")
        return found
    """,
        _fs_none_found,
    ),
    simple(
        "read the data folder by absolute path",
        lambda s, li: f"return open({str(s.canary_path)!r}).read()",
    ),
    simple(
        "read through /proc/1/root",
        f"""
        return open("/proc/1/root" + {TESTS_PY!r}).read()
    """,
    ),
    simple(
        "read /proc environ and cmdline of self, parent and grader",
        lambda s, li: (
            f"""
        out = []
        for path in ("/proc/self/environ", "/proc/1/environ", "/proc/{os.getpid()}/environ",
                     "/proc/{os.getpid()}/cmdline", "/proc/%d/environ" % os.getppid(),
                     "/proc/self/mountinfo"):
            try:
                out.append(open(path, "rb").read())
            except OSError:
                pass
        if not out:
            raise PermissionError("nothing readable")
        return out
    """
        ),
    ),
    simple("environment variables", "return dict(os.environ)", _env),
    # -- network -------------------------------------------------------------------------------
    simple(
        "connect to PostgreSQL on 127.0.0.1:5432",
        """
        import socket
        s = socket.create_connection(("127.0.0.1", 5432), timeout=2)
        s.sendall(b"\\x00\\x00\\x00\\x08\\x04\\xd2\\x16\\x2f")
        return s.recv(100)
    """,
    ),
    simple(
        "connect to Redis on 127.0.0.1:6379",
        """
        import socket
        s = socket.create_connection(("127.0.0.1", 6379), timeout=2)
        s.sendall(b"PING\\r\\n")
        return s.recv(100)
    """,
    ),
    simple(
        "HTTP request to a port of the grader's host",
        lambda s, li: (
            f"""
        import urllib.request
        return urllib.request.urlopen("http://127.0.0.1:{li.tcp_port}/", timeout=2).read()
    """
        ),
        _nothing_reached,
    ),
    simple(
        "TCP to the outside world and DNS",
        """
        import socket
        for host, port in (("1.1.1.1", 443), ("8.8.8.8", 53), ("10.0.0.1", 80)):
            try:
                socket.create_connection((host, port), timeout=2)
                return "connected to " + host
            except OSError:
                pass
        return socket.getaddrinfo("example.com", 80)
    """,
    ),
    simple(
        "UDP to the host and the outside",
        lambda s, li: (
            f"""
        import socket
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent = []
        for target in (("127.0.0.1", {li.udp_port}), ("8.8.8.8", 53)):
            try:
                sent.append(u.sendto(b"hello", target))
            except OSError:
                pass
        if not sent:
            raise OSError("no datagram could be sent")
        return sent
    """
        ),
        _nothing_reached,
    ),
    simple(
        "unix sockets: PostgreSQL's, a host service's, an abstract one",
        lambda s, li: (
            f"""
        import socket
        for address in ("/var/run/postgresql/.s.PGSQL.5432", "/run/postgresql/.s.PGSQL.5432",
                        {li.unix_path!r}, "\\0" + {li.abstract_name!r}):
            try:
                c = socket.socket(socket.AF_UNIX)
                c.settimeout(2)
                c.connect(address)
                return "connected to " + repr(address)
            except OSError:
                pass
        raise OSError("no unix socket reachable")
    """
        ),
        _nothing_reached,
    ),
    simple(
        "raw and netlink sockets",
        """
        import socket
        for family, kind in ((socket.AF_NETLINK, socket.SOCK_RAW), (socket.AF_PACKET,
                              socket.SOCK_RAW), (socket.AF_INET, socket.SOCK_RAW)):
            try:
                socket.socket(family, kind)
                return "opened %s" % family
            except OSError:
                pass
        raise OSError("no raw socket")
    """,
    ),
    # -- resources -----------------------------------------------------------------------------
    Attack(
        "fork bomb at import",
        lambda s, li: [PRELUDE, "import os\nwhile True:\n    os.fork()\n", LEAK],
        lambda ctx: None,
    ),
    Attack(
        "fork bomb in a function",
        lambda s, li: [
            PRELUDE,
            """
import os
def label_smoothing_ce(*a, **k):
    while True:
        os.fork()
def early_stopping_epoch(*a, **k):
    pids = [os.fork() for _ in range(200)]
    return 0
""",
        ],
        lambda ctx: None,
    ),
    Attack(
        "memory bomb at import",
        lambda s, li: [
            PRELUDE,
            """
hog = bytearray(64 * 1024 ** 3)
""",
            """
hog = []
while True:
    hog.append(bytearray(50 * 1024 ** 2))
""",
            LEAK,
        ],
        lambda ctx: None,
    ),
    Attack(
        "memory bomb in a function",
        lambda s, li: [
            PRELUDE,
            """
def early_stopping_epoch(*a, **k):
    import numpy
    hog = []
    while True:  # grows until the address-space limit: MemoryError
        hog.append(numpy.empty(50 * 1024 ** 2, dtype=numpy.uint8))
def label_smoothing_ce(*a, **k):
    import torch
    return torch.empty(10 ** 12)
""",
        ],
        _oom,
    ),
    Attack(
        "infinite loop in a function",
        lambda s, li: [
            PRELUDE,
            """
def label_smoothing_ce(*a, **k):
    while True:
        pass
def early_stopping_epoch(*a, **k):
    return -99
""",
        ],
        _timeout,
    ),
    Attack(
        "infinite loop at import",
        lambda s, li: [PRELUDE, "while True:\n    pass\n", LEAK],
        _cell_timeout,
    ),
    simple(
        "fill the disk",
        """
        results = []
        def write(where, path, size, chunk=1 << 20):
            try:
                with open(path, "wb") as f:
                    for _ in range(size // chunk):
                        f.write(b"x" * chunk)
                results.append(where + "=WROTE")
            except OSError as e:
                results.append(where + ("=FULL" if e.errno == 28 else "=BLOCKED"))
        write("tmp", "/tmp/fill", 10 ** 10)
        write("big", "/tmp/big-" + str(os.getpid()), 10 ** 9)
        write("submission", "/submission/x", 1 << 20)
        write("project", os.path.join(os.path.dirname(os.path.dirname(
            __import__("protocol").__file__)), "protocol", "evil.py"), 1 << 20)
        write("runtime", os.path.join(os.path.dirname(os.__file__), "evil.py"), 1 << 20)
        write("root", "/evil", 1 << 20)
        raise OSError(" ".join(results))
    """,
        _disk,
    ),
    Attack(
        "huge output",
        lambda s, li: [
            PRELUDE,
            """
import sys, os
print("x" * 10 ** 8)
for _ in range(10 ** 5):
    sys.stdout.write("y" * 1000)
    sys.stderr.write("z" * 1000)
os.write(1, b"w" * 10 ** 7)
os.write(2, b"v" * 10 ** 7)
sys.__stdout__.write("u" * 10 ** 6)
def label_smoothing_ce(*a, **k):
    print("o" * 10 ** 8)
    raise RuntimeError("e" * 10 ** 6)
def early_stopping_epoch(*a, **k):
    return "s" * 10 ** 7
""",
        ],
        _output_capped,
    ),
    # -- exits and kills -------------------------------------------------------------------
    Attack(
        "os._exit and sys.exit",
        lambda s, li: [
            PRELUDE,
            "import os\nos._exit(3)\n",
            """
import sys
def label_smoothing_ce(*a, **k):
    import os
    os._exit(0)
def early_stopping_epoch(*a, **k):
    sys.exit(0)
""",
            "raise SystemExit(1)\n",
        ],
        _crashed_cell,
    ),
    simple(
        "kill the parent, the grader and the zygote",
        lambda s, li: (
            f"""
        import signal
        for pid in (os.getppid(), {os.getpid()}, {launcher.get_zygote().proc.pid}):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return "survived"
    """
        ),
        _kills,
    ),
    simple(
        "kill the process group and everything",
        """
        import signal
        for fn in (lambda: os.killpg(0, signal.SIGKILL),
                   lambda: os.killpg(os.getpgid(0), signal.SIGKILL),
                   lambda: os.kill(-1, signal.SIGKILL)):
            try:
                fn()
            except OSError:
                pass
        return "survived"
    """,
        _kills,
    ),
    simple(
        "kill pid 1",
        """
        import signal
        os.kill(1, signal.SIGKILL)
        os.kill(1, signal.SIGTERM)
        return "survived"
    """,
        _kills,
    ),
    # -- cheating the comparison ---------------------------------------------------------
    Attack(
        "monkey-patch torch.allclose and friends",
        lambda s, li: [
            PRELUDE,
            """
import torch
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.isclose = lambda *a, **k: torch.tensor(True)
torch.testing.assert_close = lambda *a, **k: None
torch.Tensor.__eq__ = lambda self, other: torch.tensor(True)
def label_smoothing_ce(logits, target, smoothing=0.0):
    return torch.tensor(123.0)
def early_stopping_epoch(losses, patience, min_delta=0.0):
    return -99
""",
        ],
        lambda ctx: None,
    ),
    Attack(
        "monkey-patch numpy.allclose",
        lambda s, li: [
            PRELUDE,
            """
import numpy, torch
numpy.allclose = lambda *a, **k: True
numpy.array_equal = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
def label_smoothing_ce(logits, target, smoothing=0.0):
    return numpy.float64(-1.0)
def early_stopping_epoch(losses, patience, min_delta=0.0):
    return numpy.int64(-99)
""",
        ],
        lambda ctx: None,
    ),
    Attack(
        "monkey-patch builtins",
        lambda s, li: [
            PRELUDE,
            """
import builtins
builtins.isinstance = lambda *a: True
builtins.len = lambda x: 0
builtins.float = lambda *a: 0.0
def label_smoothing_ce(*a, **k):
    return 0.0
def early_stopping_epoch(*a, **k):
    return -99
""",
        ],
        lambda ctx: None,
    ),
    Attack(
        "monkey-patch graders.compare and the protocol",
        lambda s, li: [
            PRELUDE,
            """
import graders.compare, protocol.codec
graders.compare.compare = lambda *a, **k: graders.compare.Verdict(True)
graders.compare.compare_tensors = lambda *a, **k: graders.compare.Verdict(True)
graders.compare.Verdict.passed = True
def label_smoothing_ce(*a, **k):
    return graders.compare.Verdict(True)
def early_stopping_epoch(*a, **k):
    return {"passed": True, "score": 100}
""",
        ],
        lambda ctx: None,
    ),
    Attack(
        "tensor subclass that lies",
        lambda s, li: [
            PRELUDE,
            """
import torch
class Liar(torch.Tensor):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def allclose(self, *a, **k): return True
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return True
def label_smoothing_ce(*a, **k):
    return torch.zeros(()).as_subclass(Liar)
def early_stopping_epoch(*a, **k):
    return torch.tensor(-1).as_subclass(Liar)
""",
        ],
        lambda ctx: None,
    ),
    Attack(
        "objects that lie in __eq__",
        lambda s, li: [
            PRELUDE,
            """
class Liar(int):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __hash__(self): return 0
class Anything:
    def __eq__(self, other): return True
    def __float__(self): return 0.0
    def __int__(self): return 0
    def __index__(self): return 0
def label_smoothing_ce(*a, **k):
    return Anything()
def early_stopping_epoch(*a, **k):
    return Liar(-5)
""",
        ],
        lambda ctx: None,
    ),
    Attack(
        "wrong types and shapes",
        lambda s, li: [
            PRELUDE,
            """
import torch
answers = iter([None, "1.0", torch.zeros(5, 5), [1, 2, 3], float("nan"), (x for x in []),
                lambda: 1, {1: 2}, type("R", (), {"__repr__": lambda s: 1 / 0})()])
def label_smoothing_ce(*a, **k):
    return next(answers, torch.zeros(3, dtype=torch.complex64))
nested = []
for _ in range(5000):
    nested = [nested]
def early_stopping_epoch(*a, **k):
    return nested
""",
        ],
        lambda ctx: None,
    ),
    # -- escapes ---------------------------------------------------------------------------
    Attack(
        "notebook shell escapes",
        lambda s, li: [
            PRELUDE,
            "!cat /etc/passwd\n",
            "%%bash\ncat /etc/passwd\n",
            attack_cell(f'''
        import subprocess
        out = []
        get_ipython().system("cat /etc/passwd")
        os.system("cat /etc/passwd; cat {TESTS_PY}")
        for cmd in (["cat", "/etc/passwd"], ["cat", {TESTS_PY!r}], ["sh", "-c", "env"],
                    ["ls", "-la", "/", "{ROOT}"]):
            try:
                r = subprocess.run(cmd, capture_output=True, timeout=5)
                out.append(r.stdout.decode() + r.stderr.decode())
            except Exception as e:
                out.append(repr(e))
        return out
    '''),
            LEAK,
        ],
        _passwd,
    ),
    simple(
        "kernel interfaces: mount, namespaces, ptrace, bpf",
        lambda s, li: (
            f"""
        import ctypes, errno
        libc = ctypes.CDLL(None, use_errno=True)
        nr = {SYSCALLS!r}
        calls = {{
            "mount": lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None),
            "unshare": lambda: libc.unshare(0x10000000),
            "setns": lambda: libc.setns(0, 0),
            "ptrace": lambda: libc.ptrace(16, 1, 0, 0),
            "chroot": lambda: libc.chroot(b"/tmp"),
            "pivot_root": lambda: libc.syscall(nr["pivot_root"], b"/tmp", b"/tmp"),
            "bpf": lambda: libc.syscall(nr["bpf"], 0, 0, 0),
            "keyctl": lambda: libc.syscall(nr["keyctl"], 0, 0, 0),
            "perf_event_open": lambda: libc.syscall(nr["perf_event_open"], 0, 0, -1, -1, 0),
            "io_uring_setup": lambda: libc.syscall(nr["io_uring_setup"], 1, 0),
        }}
        out = []
        for name, call in calls.items():
            r = call()
            out.append(name + (":ok" if r >= 0 else ":" + errno.errorcode.get(
                ctypes.get_errno(), "?")))
        raise PermissionError(" ".join(out))
    """
        ),
        _kernel,
    ),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack(
    attack: Attack,
    hw1: LoadedAssignment,
    factory: SandboxFactory,
    solution: bytes,
    secrets: Secrets,
    listeners: Listeners,
) -> None:
    zygote = launcher.get_zygote()
    report = grade_notebook(hw1, code_notebook(*attack.cells(secrets, listeners)), factory)

    # A report, with a score and an outcome for every test.
    assert report.tests and len(report.tests) == sum(
        len(spec.tests) for spec in hw1.exercises.values() if spec.kind != "model"
    )
    assert all(
        t.outcome in ("passed", "failed", "error", "timeout", "oom", "crashed")
        for t in report.tests
    )
    assert report.score <= attack.max_score + 1e-9, [
        (t.name, t.outcome, t.score) for t in report.tests if t.score
    ]
    text = student_text(report)
    assert not secrets.leaked(text), secrets.leaked(text)
    attack.check(Ctx(report, text, secrets, listeners))
    assert "pivot_root" in report.isolation or os.geteuid() != 0

    # Whatever the attack did, it is gone: no process of the sandbox's uid survives.
    if os.geteuid() == 0:
        import time

        deadline = time.monotonic() + 3
        while uid_processes(sandbox_uid(launcher.worker_slot())) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not uid_processes(sandbox_uid(launcher.worker_slot()))

    # The worker process is unharmed: same zygote, and an honest submission gets 5/5.
    assert launcher.get_zygote() is zygote and zygote.alive()
    honest = grade_notebook(hw1, solution, factory)
    assert honest.score == honest.max_score == 5, [
        (t.name, t.outcome, t.feedback) for t in honest.tests if t.outcome != "passed"
    ]
    assert not secrets.leaked(student_text(honest))


def test_symlink_in_submission_folder(
    hw1: LoadedAssignment, solution: bytes, secrets: Secrets, tmp_path: Path
) -> None:
    """A submission folder holding links to hidden files (an unpacked archive) leaks nothing."""
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "tests_link.py").symlink_to(HW1_DIR / "tests.py")
    (folder / "canary_link").symlink_to(secrets.canary_path)
    (folder / "helper.py").write_text("VALUE = 41\n")
    factory = launcher.sandbox_factory(public_dirs=(hw1.meta.public_dir,), submission_dir=folder)
    cells = [
        PRELUDE,
        attack_cell("""
        import helper
        found = sorted(os.listdir("/submission"))
        got = []
        for name in ("tests_link.py", "canary_link"):
            try:
                got.append(open("/submission/" + name).read())
            except OSError:
                pass
        return found, got, helper.VALUE + 1
    """),
        LEAK,
    ]
    report = grade_notebook(hw1, code_notebook(*cells), factory)
    assert "42" in report.output  # the submission's own files are there
    assert not secrets.leaked(student_text(report))
    honest = grade_notebook(hw1, solution, factory)
    assert honest.score == 5
