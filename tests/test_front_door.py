"""The front door under a deadline crowd and hostile uploads (issue 12).

- The in-flight limit cannot deadlock: with every permit held, /healthz answers, other
  requests get a 503 with Retry-After after a bounded wait, and the service frees
  itself once the stalled uploads time out.
- 100 students, each signed in with a cookie, post the upload form at the same moment
  (embedded and distributed): all answered 303 within 60 s, all graded, and the JSON
  API answers during and after.
- Each hostile upload class is refused with its 4xx and a sentence naming the limit,
  within 5 s, with nothing stored; files just inside the limits are accepted and the
  worker grades them (never `failed`).
- A 300 MB chunked body is cut off with 413 before 64 MB were read.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from safetensors.torch import save

from api.inflight import Permits
from graders.intake import clean_filename, detect_kind, plain_python, read_cells, read_notebook
from graders.intake_limits import IntakeError, IntakeLimit, IntakeTooLarge
from graders.model_files import check_safetensors
from graders.notebooks import code_notebook
from tests.support.notebooks import course_notebook
from tests.support.paths import HW1
from tests.support.stack import Stack, base_env, cli, free_port, wait_http
from tests.support.staffing import clone_course, hw1_source

UPLOAD = f"/api/v1/courses/dlp/assignments/{HW1}/submissions"


# -- payloads ---------------------------------------------------------------------------


def deep_notebook(levels: int) -> bytes:
    return (
        b'{"cells": [], "nbformat": 4, "nbformat_minor": 5, "metadata": '
        + b'{"a": ' * levels
        + b"1"
        + b"}" * levels
        + b"}"
    )


def nested_metadata(notebook: bytes, levels: int) -> bytes:
    nb = json.loads(notebook)
    node = nb["metadata"]
    for _ in range(levels):
        node["a"] = {}
        node = node["a"]
    return json.dumps(nb).encode()


def many_cells(notebook: bytes, total: int, broken: bool = False) -> bytes:
    nb = json.loads(notebook)
    filler = {"cell_type": "markdown", "metadata": {}, "source": "."}
    nb["cells"] += [dict(filler) for _ in range(total - len(nb["cells"]))]
    if broken:
        nb["cells"][-1] = {"cell_type": "code", "source": 7}
    return json.dumps(nb).encode()


def safetensors_of(entries: int, header_only: bool = True) -> bytes:
    header = {
        f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(entries)
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(raw)) + raw


# -- the in-flight limit, in process ------------------------------------------------------


@pytest.mark.fast
def test_permits_wait_a_bounded_time_in_order_and_pass_on_when_cancelled() -> None:
    async def scenario() -> None:
        permits = Permits(limit=2, wait_seconds=0.3)
        assert await permits.acquire() and await permits.acquire()
        started = time.monotonic()
        assert await permits.acquire() is False  # nobody released: a bounded wait
        assert 0.25 < time.monotonic() - started < 1.0
        order: list[int] = []

        async def waiter(i: int) -> None:
            if await permits.acquire():
                order.append(i)

        permits.wait_seconds = 5
        tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
        await asyncio.sleep(0.05)
        tasks[1].cancel()  # a client that went away while waiting
        await asyncio.sleep(0.05)
        permits.release()
        permits.release()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert order == [0, 2]  # first come, first served; the cancelled one skipped
        assert permits.in_use == 2 and permits.waiting == 0
        permits.release()
        permits.release()
        assert permits.in_use == 0

    asyncio.run(scenario())


# -- intake, in process --------------------------------------------------------------------

SOLUTION = course_notebook(HW1, "solution")


@pytest.mark.fast
@pytest.mark.parametrize(
    ("name", "data", "limit", "words"),
    [
        ("deep.ipynb", deep_notebook(100_000), "max_depth", "nested too deeply"),
        ("deep493.ipynb", nested_metadata(SOLUTION, 493), "max_depth", "64 levels"),
        ("cells.ipynb", many_cells(SOLUTION, 150_000, broken=True), "max_cells", "limit is 2000"),
        ("long.ipynb", code_notebook("x = 1\n" * 400_000), "max_source_chars", "too long"),
        ("long.py", b"x = 1\n" * 400_000, "max_source_chars", "too long"),
        ("many.py", b"# %%\nx = 1\n" * 2001, "max_cells", "limit is 2000"),
        ("many.safetensors", safetensors_of(300_000), "max_tensor_header_bytes", "header"),
        ("count.safetensors", safetensors_of(10_001), "max_tensors", "10,000"),
    ],
)
def test_intake_refuses_past_each_limit_quickly(
    name: str, data: bytes, limit: str, words: str
) -> None:
    started = time.monotonic()
    with pytest.raises(IntakeLimit) as refused:
        detect_kind(name, data)
    assert time.monotonic() - started < 5
    assert refused.value.limit == limit
    assert words in str(refused.value) and str(refused.value).endswith(".")


@pytest.mark.fast
def test_intake_never_lets_a_recursion_error_out_and_agrees_with_the_worker() -> None:
    deep_code = b"x = " + b"+".join([b"1"] * 200_000) + b"\n"
    assert detect_kind("deep.py", deep_code) == "python"  # left to the sandbox to fail
    assert read_cells("python", deep_code)[0].source.startswith("x = 1+1")
    assert plain_python("(" * 10_000 + ")" * 10_000)
    for data in (nested_metadata(SOLUTION, 60), many_cells(SOLUTION, 2000)):
        assert detect_kind("ok.ipynb", data) == "notebook"
        assert read_cells("notebook", data) == read_notebook(data)
    with pytest.raises(IntakeTooLarge):
        detect_kind("big.py", b"#" * (20 * 2**20 + 1))
    with pytest.raises(IntakeError, match="format version"):
        detect_kind("v3.ipynb", b'{"cells": [], "nbformat": 3}')


@pytest.mark.fast
def test_safetensors_header_is_checked_against_the_file_without_loading_it() -> None:
    good = save(
        {
            "w": torch.zeros(3, 4),
            "b": torch.ones(4, dtype=torch.float16),
            "flag": torch.zeros(2, dtype=torch.bool),
        },
        metadata={"by": "test"},
    )
    assert set(check_safetensors(good)) == {"w", "b", "flag"}
    for bad, words in (
        (good[:-1], "cover"),
        (good + b"\0", "cover"),
        (struct.pack("<Q", 2**40) + b"{}", "limit"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    ):
        with pytest.raises(IntakeError, match=words):
            check_safetensors(bad)


@pytest.mark.fast
@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a\x00b.ipynb", "ab.ipynb"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\hw.ipynb", "hw.ipynb"),
        ("\u202egnp.ipynb", "gnp.ipynb"),
        ("x\x1b[31m.py", "x[31m.py"),
        ("  spaced   name.py ", "spaced name.py"),
        ("a" * 300 + ".ipynb", "a" * 249 + ".ipynb"),
    ],
)
def test_file_names_are_cleaned(raw: str, clean: str) -> None:
    assert clean_filename(raw) == clean


@pytest.mark.fast
@pytest.mark.parametrize("raw", ["", "..", "/", "\x00\x01", " . "])
def test_a_file_name_with_nothing_left_is_refused(raw: str) -> None:
    with pytest.raises(IntakeError, match="no usable name"):
        clean_filename(raw)


# -- a service of its own: every permit held --------------------------------------------


@pytest.fixture(scope="module")
def small_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`autograder serve` alone (SQLite, folder broker, no worker) with 4 permits, a 2 s
    wait for one, and uploads cut off after 4 s without data."""
    workdir = tmp_path_factory.mktemp("small-service")
    env = base_env(workdir)
    env.update(
        AUTOGRADER_INFLIGHT_LIMIT="4",
        AUTOGRADER_INFLIGHT_WAIT_SECONDS="2",
        AUTOGRADER_UPLOAD_IDLE_SECONDS="4",
    )
    port = free_port()
    stack = Stack(base_url=f"http://127.0.0.1:{port}", env=env, workdir=workdir)
    try:
        cli(env, "migrate")
        stack.add_user("sam", "student")
        api = stack.start("api", "serve", "--port", str(port))
        wait_http(f"{stack.base_url}/healthz", proc=api)
        yield stack
    finally:
        stack.stop()


def stalled_upload(stack: Stack, user: str) -> socket.socket:
    """An upload whose body stops after its first bytes: it holds a permit."""
    port = int(stack.base_url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    part = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.ipynb"'
        b'\r\n\r\n{"cells": ['
    )
    sock.sendall(
        f"POST {UPLOAD} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {stack.tokens[user]}\r\n"
        "Content-Type: multipart/form-data; boundary=XyZ\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
        + f"{len(part):x}\r\n".encode()
        + part
        + b"\r\n"
    )
    return sock


def inflight(stack: Stack) -> dict[str, int]:
    return dict(httpx.get(f"{stack.base_url}/healthz", timeout=5).json()["inflight"])


def test_every_permit_held_health_answers_and_the_service_frees_itself(
    small_service: Stack,
) -> None:
    stack = small_service
    assert inflight(stack) == {"limit": 4, "in_use": 0, "waiting": 0}
    sockets = [stalled_upload(stack, "sam") for _ in range(4)]
    try:
        deadline = time.monotonic() + 10
        while inflight(stack)["in_use"] < 4:
            assert time.monotonic() < deadline, inflight(stack)
            time.sleep(0.05)
        started = time.monotonic()
        health = httpx.get(f"{stack.base_url}/healthz", timeout=5)
        assert health.status_code == 200 and time.monotonic() - started < 2
        with stack.client("sam") as c:
            started = time.monotonic()
            busy = c.get("/api/v1/courses/dlp/assignments")
            waited = time.monotonic() - started
        assert busy.status_code == 503, busy.text
        assert 1.5 < waited < 6, waited
        assert busy.headers["retry-after"].isdigit()
        assert "busy" in busy.json()["detail"] and busy.json()["detail"].endswith(".")

        # The stalled uploads are cut off (408) and their permits come back.
        for sock in sockets:
            sock.settimeout(15)
            answer = ""
            while "no data arrived" not in answer:  # headers and body may come apart
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk.decode(errors="replace")
            assert answer.startswith("HTTP/1.1 408"), answer
            assert "no data arrived" in answer
        deadline = time.monotonic() + 10
        while inflight(stack)["in_use"] != 0:
            assert time.monotonic() < deadline, inflight(stack)
            time.sleep(0.05)
        with stack.client("sam") as c:
            assert c.get("/api/v1/courses/dlp/assignments").status_code == 200
    finally:
        for sock in sockets:
            sock.close()


def chunked_upload(stack: Stack, user: str, megabytes: int) -> tuple[httpx.Response, int]:
    """A chunked multipart body of `megabytes` MB; also returns the bytes the client
    managed to hand over before the answer."""
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        head = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="big.ipynb"\r\n\r\n'
        sent += len(head)
        yield head
        for _ in range(megabytes):
            sent += 2**20
            yield b" " * 2**20
        yield b"\r\n--XyZ--\r\n"

    with stack.client(user) as c:
        response = c.post(
            UPLOAD, content=body(), headers={"Content-Type": "multipart/form-data; boundary=XyZ"}
        )
    return response, sent


def test_a_300_mb_chunked_body_is_cut_off_before_64_mb(small_service: Stack) -> None:
    started = time.monotonic()
    response, sent = chunked_upload(small_service, "sam", 300)
    assert response.status_code == 413, response.text
    assert "the limit is 20 MB" in response.json()["detail"]
    assert sent < 64 * 2**20, f"{sent / 2**20:.0f} MB were taken before the 413"
    assert time.monotonic() - started < 5
    print(f"\n300 MB chunked: 413 after {sent / 2**20:.1f} MB handed over by the client")
    # Refused before the body: the connection is closed, not drained.
    with httpx.Client(base_url=small_service.base_url, timeout=30) as c:
        r = c.post(
            UPLOAD,
            content=(b" " * 2**20 for _ in range(300)),
            headers={
                "Content-Type": "multipart/form-data; boundary=XyZ",
                "Authorization": "Bearer nope",
            },
        )
    assert r.status_code == 401 and r.headers["connection"] == "close"


# -- hostile uploads against the distributed stack ----------------------------------------


def submission_count(stack: Stack) -> int:
    with stack.client("tina") as c:
        response = c.get(f"/api/v1/courses/dlp/assignments/{HW1}/submissions")
    assert response.status_code == 200
    return len(response.json())


def blob_count(stack: Stack) -> int:
    root = Path(stack.env["AUTOGRADER_DATA_DIR"]) / "blobs"
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0


HOSTILE = [
    ("deep.ipynb", lambda: deep_notebook(100_000), 422, "nested too deeply"),
    ("deep493.ipynb", lambda: nested_metadata(SOLUTION, 493), 422, "nested too deeply"),
    ("cells.ipynb", lambda: many_cells(SOLUTION, 150_000, broken=True), 422, "cells"),
    ("long.ipynb", lambda: code_notebook("x = 1\n" * 400_000), 422, "too long"),
    ("many.safetensors", lambda: safetensors_of(300_000), 422, "safetensors header"),
    ("count.safetensors", lambda: safetensors_of(10_001), 422, "tensors"),
    ("huge.ipynb", lambda: b"{" + b" " * (21 * 2**20) + b"}", 413, "too large"),
]


@pytest.mark.parametrize(
    ("filename", "make", "status", "words"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
def test_hostile_uploads_are_refused_fast_with_a_sentence(
    pg_stack: Stack, filename: str, make: Any, status: int, words: str
) -> None:
    data = make()
    before, blobs_before = submission_count(pg_stack), blob_count(pg_stack)
    started = time.monotonic()
    response = pg_stack.submit("alice", HW1, filename, data)
    elapsed = time.monotonic() - started
    assert response.status_code == status, response.text[:300]
    detail = response.json()["detail"]
    assert words in detail and detail.endswith("."), detail
    assert elapsed < 5, f"{filename}: {elapsed:.1f} s"
    assert submission_count(pg_stack) == before
    assert blob_count(pg_stack) == blobs_before
    assert httpx.get(f"{pg_stack.base_url}/healthz").status_code == 200


def test_files_just_inside_the_limits_are_graded_never_failed(pg_stack: Stack) -> None:
    cases = {
        "nested60.ipynb": nested_metadata(SOLUTION, 60),
        "cells2000.ipynb": many_cells(SOLUTION, 2000),
        "deep_expression.py": hw1_source() + b"\n# %%\nx = " + b"+".join([b"1"] * 100_000),
    }
    ids = {}
    for name, data in cases.items():
        response = pg_stack.submit("alice", HW1, name, data)
        assert response.status_code == 202, (name, response.text)
        ids[name] = response.json()["id"]
    for name, sid in ids.items():
        body = pg_stack.wait_graded("alice", sid, timeout=240)
        assert body["status"] == "graded", (name, body.get("error"))
        assert body["score"] == pytest.approx(body["max_score"]), name


def test_a_nul_in_the_file_name_or_the_path_is_not_an_outage(pg_stack: Stack) -> None:
    # Written by hand: httpx would percent-encode the NUL; curl and browsers may not.
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; '
        b'filename="../x/home\x00work\x1b.py"\r\n\r\n' + hw1_source() + b"\r\n--XyZ--\r\n"
    )
    with pg_stack.client("alice") as c:
        response = c.post(
            UPLOAD, content=body, headers={"Content-Type": "multipart/form-data; boundary=XyZ"}
        )
    assert response.status_code == 202, response.text
    with pg_stack.client("alice") as c:
        assert (
            c.get(f"/api/v1/submissions/{response.json()['id']}").json()["filename"]
            == "homework.py"
        )
        for path in ("/api/v1/courses/a%00b/assignments", "/api/v1/submissions/x%00y"):
            r = c.get(path)
            assert r.status_code in (404, 422), (path, r.status_code, r.text)
            assert r.json()["detail"].endswith(".")


# -- the deadline rush through the pages ----------------------------------------------------

STUDENTS = 100


async def _rush(
    stack: Stack, course: str, names: list[str], staff: str, data: bytes
) -> dict[str, Any]:
    url = f"/ui/courses/{course}/assignments/{HW1}/submissions"
    start = asyncio.Event()
    limits = httpx.Limits(max_connections=STUDENTS + 10, max_keepalive_connections=0)
    probes: list[tuple[float, int]] = []
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=120, limits=limits) as c:

        async def student(name: str) -> tuple[int, str, float]:
            await start.wait()
            began = time.monotonic()
            r = await c.post(
                url,
                files={"file": ("hw1.py", data)},
                headers={"Origin": stack.base_url, "Cookie": f"ag_session={stack.tokens[name]}"},
            )
            return (
                r.status_code,
                r.headers.get("location", r.text[:200]),
                (time.monotonic() - began),
            )

        async def one_probe() -> None:
            began = time.monotonic()
            r = await c.get(
                f"/api/v1/courses/{course}/assignments",
                headers={"Authorization": f"Bearer {stack.tokens[staff]}"},
            )
            probes.append((time.monotonic() - began, r.status_code))

        async def probe(stop: asyncio.Event) -> None:
            """A JSON request every 0.25 s while the uploads are answered (each one
            waits its turn with them; none may fail)."""
            await start.wait()
            sent = []
            while not stop.is_set():
                sent.append(asyncio.create_task(one_probe()))
                await asyncio.sleep(0.25)
            await asyncio.gather(*sent)

        stop = asyncio.Event()
        tasks = [asyncio.create_task(student(n)) for n in names]
        prober = asyncio.create_task(probe(stop))
        await asyncio.sleep(0.5)
        began = time.monotonic()
        start.set()
        answers = await asyncio.gather(*tasks)
        total = time.monotonic() - began
        stop.set()
        await prober
    return {"answers": answers, "total": total, "probes": probes}


@pytest.mark.timeout(1200)
def test_a_hundred_students_post_the_upload_form_at_once(any_stack: Stack) -> None:
    stack = any_stack
    tag = uuid.uuid4().hex[:6]
    course = f"rush-{tag}"
    names = [f"rush{i:03d}-{tag}" for i in range(STUDENTS)]
    staff = f"rush-ta-{tag}"
    clone_course(stack, course, {**dict.fromkeys(names, "student"), staff: "ta"})
    result = asyncio.run(_rush(stack, course, names, staff, hw1_source()))
    answers, probes = result["answers"], result["probes"]
    latencies = sorted(a[2] for a in answers)
    print(
        f"\nrush ({stack.env.get('AUTOGRADER_DATABASE_URL', 'embedded')[:10]}): "
        f"{STUDENTS} uploads answered in {result['total']:.1f} s, latency p50 "
        f"{latencies[len(latencies) // 2]:.2f} s, max {latencies[-1]:.2f} s; JSON probes "
        f"during: {len(probes)}, max {max(p[0] for p in probes):.2f} s"
    )
    wrong = [a for a in answers if a[0] != 303 or not a[1].startswith("/ui/submissions/")]
    assert not wrong, wrong[:5]
    assert latencies[-1] < 60 and result["total"] < 60
    assert probes and all(status == 200 for _, status in probes), probes
    ids = {a[1].rsplit("/", 1)[1] for a in answers}
    assert len(ids) == STUDENTS

    deadline = time.monotonic() + 900
    with stack.client(staff) as c:
        while True:
            listed = c.get(f"/api/v1/courses/{course}/assignments/{HW1}/submissions")
            assert listed.status_code == 200  # the JSON API answers after, too
            statuses = {s["id"]: s["status"] for s in listed.json()}
            assert set(statuses) == ids
            if all(s in ("graded", "failed") for s in statuses.values()):
                break
            assert time.monotonic() < deadline, statuses
            time.sleep(2)
    assert set(statuses.values()) == {"graded"}
