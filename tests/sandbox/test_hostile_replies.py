"""Hostile replies: the student's code writes its own frames on the sandbox's reply pipe.

The sandbox keeps student code in; these tests check the other way, that nothing it
sends back can crash, bloat, outlive or fool the grader. Each case is a hw1 notebook
whose functions, when a test calls them, write a crafted frame straight to the reply
pipe and then wait. For each case:

- grading returns a report with no credit and an outcome per test (never an exception);
- the grader's peak memory grows by less than three frame caps;
- what would be stored (feedback, log) stays within a fixed size and holds no NUL;
- no process of the slot's sandbox uid is left 5 s after the job;
- the next honest submission, which uses a thread pool, gets full marks on the same
  worker process (same zygote, same uid).
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.settings import get_settings
from graders.course import LoadedAssignment
from graders.notebooks import code_notebook, with_extra_cell
from graders.runner import GradeLimits, GradeReport
from graders.sandbox_api import SandboxFactory
from protocol.limits import REPLY_LIMITS
from tests.support.isolation import layer_missing
from tests.support.sandbox import Secrets, grade_notebook, student_text, uid_processes
from worker.sandbox import launcher
from worker.sandbox.host_plan import sandbox_uid

#: Finds the reply pipe (the only write-only pipe the sandbox holds) and the number of
#: the request being answered (from the serving frame, as an attacker would).
FORGE = """
import fcntl, os, stat, struct, sys, time
import msgpack

def _reply_fd():
    for fd in range(3, 64):
        try:
            mode = os.fstat(fd).st_mode
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            continue
        if stat.S_ISFIFO(mode) and flags & os.O_ACCMODE == os.O_WRONLY:
            return fd
    raise RuntimeError("no reply pipe")

def _seq():
    frame = sys._getframe()
    while frame is not None:
        request = frame.f_locals.get("request")
        if isinstance(request, dict) and "seq" in request:
            return request["seq"]
        frame = frame.f_back
    return 0

def _send_raw(data, header=None):
    fd = _reply_fd()
    os.write(fd, struct.pack(">I", len(data) if header is None else header))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view[:1 << 16]):]

def _forge(make):
    def answer(*args, **kwargs):
        _send_raw(make())
        time.sleep(30)
    return answer
"""


def _hostile(make_body: str) -> bytes:
    """A notebook whose two hw1 functions answer with the frame `make()` builds."""
    body = textwrap.dedent(make_body).strip()
    return code_notebook(
        FORGE,
        f"def make():\n{textwrap.indent(body, '    ')}\n",
        "label_smoothing_ce = _forge(make)\nearly_stopping_epoch = _forge(make)\n",
    )


CASES: dict[str, bytes] = {
    # 714 bytes used to overflow the C stack: tuples inside tuples, decoded recursively.
    "deep nesting": _hostile("""
inner = msgpack.packb(None)
for _ in range(20000):
    inner = msgpack.packb([msgpack.ExtType(2, inner)])
return msgpack.packb({"ok": True, "seq": _seq(), "value": msgpack.ExtType(2, inner)})
"""),
    "deep plain lists": _hostile("""
return b"\\x81\\xa5value" + b"\\x91" * 100000 + b"\\xc0"
"""),
    "oversized frame header": code_notebook(
        FORGE,
        """
def _big(*args, **kwargs):
    _send_raw(b"\\x00" * 64, header=300 * 1024 * 1024)
    time.sleep(30)
label_smoothing_ce = early_stopping_epoch = _big
""",
    ),
    "millions of empty lists": _hostile("""
return b"\\xdd" + struct.pack(">I", 7_000_000) + b"\\x90" * 7_000_000
"""),
    "many small containers": _hostile("""
chunk = msgpack.packb([[]] * 60000)
return msgpack.packb({"ok": True, "seq": _seq(), "value": [msgpack.ExtType(2, chunk)] * 40})
"""),
    "not a message": _hostile("""
return msgpack.packb(12345)
"""),
    "garbage bytes": _hostile("""
return b"\\xc1" * 100
"""),
    "truncated document": _hostile("""
return msgpack.packb({"ok": True, "seq": _seq(), "value": list(range(100))})[:-7]
"""),
    "error that is not a map": _hostile("""
return msgpack.packb({"ok": False, "seq": _seq(), "error": "nope"})
"""),
    "error type that is not text": _hostile("""
return msgpack.packb({"ok": False, "seq": _seq(), "error": {"type": [1, 2], "message": 3}})
"""),
    "ok that is not a boolean": _hostile("""
return msgpack.packb({"ok": "yes", "seq": _seq(), "value": 1.0})
"""),
    "mutated of the wrong type": _hostile("""
return msgpack.packb({"ok": True, "seq": _seq(), "value": 1.0, "mutated": {"a": 1}})
"""),
    "event instead of a reply": _hostile("""
return msgpack.packb({"event": "ready", "isolation": "none at all"})
"""),
    "reply out of turn": _hostile("""
return msgpack.packb({"ok": True, "seq": _seq() + 1000, "value": 1.0})
"""),
    "unknown extension type": _hostile("""
return msgpack.packb({"ok": True, "seq": _seq(), "value": msgpack.ExtType(99, b"x")})
"""),
    "forged tensor payload": _hostile("""
return msgpack.packb({"ok": True, "seq": _seq(),
                      "value": msgpack.ExtType(1, b"\\x08" + b"\\x00" * 7 + b"{}")})
"""),
    "numpy array of empty items": _hostile("""
import io, numpy as np
buf = io.BytesIO()
np.save(buf, np.zeros(10 ** 9, dtype="V0"))
return msgpack.packb({"ok": True, "seq": _seq(), "value": msgpack.ExtType(3, buf.getvalue())})
"""),
    "NUL and giant strings in an error": _hostile("""
huge = "A\\x00\\ud800" * 300000
return msgpack.packb({"ok": False, "seq": _seq(),
                      "error": {"type": "Boom\\x00" * 50000, "message": huge, "traceback": huge}},
                     unicode_errors="surrogatepass")
"""),
}

#: The same classes of misbehaviour without forging anything: what the child reports.
HONEST_BUT_HOSTILE = {
    "NUL in a raised message": code_notebook("""
def label_smoothing_ce(*args, **kwargs):
    raise ValueError("bad\\x00" * 500000)
def early_stopping_epoch(*args, **kwargs):
    raise ValueError("\\x00" * 10)
print("\\x00" * 1000 + "x" * 10_000_000)
"""),
    "a value too large to send": code_notebook("""
import torch
def label_smoothing_ce(*args, **kwargs):
    return torch.zeros(64 * 1024 * 1024 // 4 + 10)
def early_stopping_epoch(*args, **kwargs):
    return "x" * (32 * 1024 * 1024)
"""),
    "a type name of a megabyte": code_notebook("""
def label_smoothing_ce(*args, **kwargs):
    return type("T" * 1_000_000, (), {})()
def early_stopping_epoch(*args, **kwargs):
    raise type("E" * 1_000_000, (Exception,), {})("x" * 1_000_000)
"""),
    "a cell that forges at load time": with_extra_cell(
        code_notebook(FORGE),
        """
_send_raw(msgpack.packb(12345))
time.sleep(30)
""",
    ),
}

#: An honest solution whose function calls run through a thread pool: it needs threads
#: of its own uid, which a leaked sandbox holding the uid's process budget would take.
THREADED_TAIL = """
import concurrent.futures
_plain_ce = label_smoothing_ce
def label_smoothing_ce(*args, **kwargs):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(_plain_ce, *args, **kwargs) for _ in range(8)]
        return futures[0].result()
"""

#: What one job may store, whatever the submission did: feedback of its tests, log.
STORED_BYTES_LIMIT = 200_000


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _stored(report: GradeReport) -> str:
    return json.dumps(
        {
            "tests": [t.feedback for t in report.tests],
            "log": report.log(),
            "isolation": report.isolation,
        }
    )


def _wait_gone(uid: int, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while uid_processes(uid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return uid_processes(uid)


@pytest.fixture(scope="module")
def threaded_solution(solution: bytes) -> bytes:
    return with_extra_cell(solution, THREADED_TAIL)


@pytest.mark.parametrize("name", [*CASES, *HONEST_BUT_HOSTILE])
def test_a_hostile_reply_costs_the_student_not_the_grader(
    name: str,
    hw1: LoadedAssignment,
    factory: SandboxFactory,
    threaded_solution: bytes,
) -> None:
    notebook = CASES.get(name) or HONEST_BUT_HOSTILE[name]
    peak_before = _peak_rss_bytes()
    started = time.monotonic()
    report = grade_notebook(hw1, notebook, factory)
    took = time.monotonic() - started
    growth = _peak_rss_bytes() - peak_before
    assert report.tests, "every test has an outcome"
    assert report.score == 0, [(t.name, t.outcome, t.feedback[:200]) for t in report.tests]
    assert growth < 3 * REPLY_LIMITS.max_frame_bytes, f"peak memory grew by {growth} bytes"
    stored = _stored(report)
    assert len(stored) < STORED_BYTES_LIMIT
    assert "\x00" not in stored and "\\u0000" not in stored
    stored.encode("utf-8")  # no lone surrogate survives
    assert took < 45, f"grading took {took:.1f} s"
    if name in CASES:
        assert {t.outcome for t in report.tests} <= {"crashed", "error"}
        assert any("channel" in t.feedback for t in report.tests), [
            t.feedback for t in report.tests
        ]
    uid = sandbox_uid(launcher.worker_slot())
    if report.isolation and f"uid {uid}" in report.isolation:
        assert _wait_gone(uid) == [], "a sandbox outlived its job"
    honest = grade_notebook(hw1, threaded_solution, factory)
    assert honest.score == honest.max_score == 5, [
        (t.name, t.outcome, t.feedback[:200]) for t in honest.tests if t.outcome != "passed"
    ]


def test_a_reply_too_large_says_so_to_the_student(
    hw1: LoadedAssignment, factory: SandboxFactory
) -> None:
    report = grade_notebook(hw1, HONEST_BUT_HOSTILE["a value too large to send"], factory)
    visible = [t for t in report.tests if t.visibility == "visible"]
    assert visible and all("over the limit" in t.feedback for t in visible)


def test_hidden_inputs_never_reach_what_a_student_reads(
    hw1: LoadedAssignment, factory: SandboxFactory
) -> None:
    """A submission that prints and hoards every input it is called with.

    Each call prints its input, numbers itself and raises with everything seen so far:
    a test's first call raises, so each test makes exactly one call, and the numbers
    in a test's feedback say which calls came before it. Whatever of a hidden test's
    inputs a student could read would show up in the output, in a visible or
    after-due test's feedback, or in a hidden test's (released) feedback.
    """
    spy = code_notebook("""
SEEN = []
def _spy(*args, **kwargs):
    SEEN.append(repr((args, kwargs))[:200])
    print("INPUT:", SEEN[-1])
    raise RuntimeError(f"CALL{len(SEEN)}:" + " || ".join(SEEN))
label_smoothing_ce = _spy
early_stopping_epoch = _spy
print("loaded")
""")
    report = grade_notebook(hw1, spy, factory)
    assert report.output.strip() == "loaded"
    phases = {
        v: [t for t in report.tests if t.visibility == v]
        for v in ("visible", "after_due", "hidden")
    }
    assert phases["visible"] and phases["hidden"], "hw1 has visible and hidden tests"
    visible_calls = sorted(
        int(t.feedback.split("CALL")[1].split(":")[0]) for t in phases["visible"]
    )
    # The visible tests made the first calls of the job: no hidden input came before.
    assert visible_calls == list(range(1, len(phases["visible"]) + 1)), visible_calls
    shown_before_hidden = len(phases["visible"]) + len(phases["after_due"])
    for test in phases["after_due"]:
        number = int(test.feedback.split("CALL")[1].split(":")[0])
        assert number <= shown_before_hidden, test.feedback
    for test in phases["hidden"]:
        assert "CALL" not in test.feedback and "INPUT" not in test.feedback, test.feedback
        assert "RuntimeError" in test.feedback
    assert "INPUT" not in student_text(report)


GRADER_THAT_DIES = """
import os, sys, time
from worker.sandbox import launcher
from worker.sandbox.config import SandboxConfig
from worker.sandbox import launcher
from worker.sandbox.host_plan import sandbox_uid
sandbox = launcher.start_sandbox(SandboxConfig())
source = ("import subprocess, threading, time\\n"
          "procs = [subprocess.Popen(['sleep', '300']) for _ in range(3)]\\n"
          "for _ in range(4): threading.Thread(target=time.sleep, args=(300,)).start()\\n")
sandbox.request({"op": "exec", "index": 1, "source": source, "seq": 1}, timeout=30)
print(sandbox_uid(launcher.worker_slot()), sandbox.isolation, flush=True)
time.sleep(300)
"""


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_grading_process_that_dies_takes_its_sandboxes_with_it(
    how: str, secrets: Secrets
) -> None:
    """The worker's own end (killed, or stopped) is a way out too: nothing outlives it."""
    root = Path(__file__).resolve().parents[2]
    grader = subprocess.Popen(
        [sys.executable, "-c", GRADER_THAT_DIES], cwd=root, stdout=subprocess.PIPE, text=True
    )
    try:
        line = grader.stdout.readline() if grader.stdout else ""
        uid_text, _, isolation = line.partition(" ")
        uid = int(uid_text)
        if f"uid {uid}" not in isolation:
            layer_missing(f"sandboxes do not switch uid here ({isolation.strip()})")
        assert len(uid_processes(uid)) >= 4  # the sandbox and its three sleeps
        grader.send_signal(getattr(signal, how))
        grader.wait(10)
        assert _wait_gone(uid, timeout=10) == [], f"sandbox processes outlived their grader ({how})"
    finally:
        if grader.poll() is None:
            grader.kill()


def test_no_host_folder_of_the_service_is_named_inside_the_sandbox(
    hw1: LoadedAssignment,
    factory: SandboxFactory,
    secrets: Secrets,
) -> None:
    """argv, the environment, every frame and every object the sandbox can reach."""
    settings = get_settings()
    hidden = sorted(
        {
            str(p)
            for p in (
                settings.course_dir,
                settings.resolved_data_dir,
                settings.resolved_blob_dir,
                hw1.meta.public_dir,
            )
        }
    )
    # Reversed, so that the probe's own source and variables do not hold the paths.
    reversed_paths = [path[::-1] for path in hidden]
    probe = code_notebook(f"""
import gc, os, sys
REVERSED = {reversed_paths!r}
texts = set([" ".join(sys.argv), repr(dict(os.environ))])
for frame in sys._current_frames().values():
    while frame is not None:
        texts.add(repr(frame.f_locals)[:100000])
        frame = frame.f_back
for obj in gc.get_objects():
    try:
        if isinstance(obj, dict):
            texts.update(v for v in obj.values() if type(v) is str and "/" in v)
        elif isinstance(obj, (list, tuple)):
            texts.update(v for v in obj if type(v) is str and "/" in v)
    except Exception:
        pass
FOUND = sorted({{i for i, r in enumerate(REVERSED) for t in texts if r[::-1] in t}})
def label_smoothing_ce(*a, **k):
    raise RuntimeError("FOUND=" + repr(FOUND))
early_stopping_epoch = label_smoothing_ce
""")
    patient = GradeLimits(cell_timeout=60.0, call_timeout=3.0, job_timeout=120.0)
    # A job first: the zygote forks each spare after the previous job, and must not
    # hand that job's host paths on to the next sandbox.
    grade_notebook(hw1, code_notebook("x = 1"), factory)
    report = grade_notebook(hw1, probe, factory, limits=patient)
    visible = [t for t in report.tests if t.visibility == "visible"]
    assert visible and all("FOUND=[]" in t.feedback for t in visible), visible[0].feedback
