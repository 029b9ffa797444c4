"""`autograder submit|status|gradebook|regrade` as separate processes against a running
service, configured the way a student would: AUTOGRADER_SERVER and AUTOGRADER_TOKEN."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.notebooks import course_notebook
from tests.support.paths import BIN, HW1, HW1_DIR, ROOT
from tests.support.stack import Stack, free_port

SOLUTION = HW1_DIR / "notebooks" / "solution.ipynb"


def client(
    stack: Stack, user: str | None, *args: str, server: str | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    env["AUTOGRADER_SERVER"] = server or stack.base_url
    if user is not None:
        env["AUTOGRADER_TOKEN"] = stack.tokens.get(user, user)
    env["COLUMNS"] = "160"
    return subprocess.run(
        [str(BIN / "autograder"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_submit_waits_for_grading_and_prints_the_feedback(embedded: Stack) -> None:
    done = client(embedded, "alice", "submit", str(SOLUTION), "--assignment", HW1)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "status: queued" in done.stderr and "status: graded" in done.stderr
    out = done.stdout
    assert "graded" in out and "label_smoothing_ce" in out and "early_stopping_epoch" in out
    assert "Outcome" in out and "passed" in out
    submission_id = out.split("submission ", 1)[1].split()[0]
    with embedded.client("alice") as c:
        body = c.get(f"/api/v1/submissions/{submission_id}").json()
    assert body["status"] == "graded" and body["score"] == pytest.approx(body["max_score"])
    assert f"Score: {body['score']:g} / {body['max_score']:g}" in out

    shown = client(embedded, "alice", "status", submission_id)
    assert shown.returncode == 0, shown.stderr
    assert f"Score: {body['score']:g} / {body['max_score']:g}" in shown.stdout
    as_json = client(embedded, "alice", "status", submission_id, "--json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) == body


def test_submit_without_waiting_and_the_same_idempotency_key(embedded: Stack) -> None:
    args = ("submit", str(SOLUTION), "-a", HW1, "--no-wait", "--idempotency-key", "cli-test-once")
    first, again = (client(embedded, "bob", *args) for _ in range(2))
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert first.stdout.strip() == again.stdout.strip() != ""
    waited = client(embedded, "bob", "status", first.stdout.strip(), "--wait")
    assert waited.returncode == 0 and "graded" in waited.stdout


def test_errors_are_the_api_sentence_with_a_nonzero_exit(embedded: Stack, tmp_path: Path) -> None:
    wrong = tmp_path / "essay.txt"
    wrong.write_text("my homework")
    r = client(embedded, "alice", "submit", str(wrong), "--assignment", HW1)
    assert r.returncode == 3
    assert "error: Unsupported file type for 'essay.txt'" in r.stderr and "(HTTP 422)" in r.stderr

    r = client(embedded, "alice", "submit", str(SOLUTION), "--assignment", "hw99-nothing")
    assert r.returncode == 3 and "There is no assignment 'hw99-nothing'" in r.stderr

    r = client(embedded, "ag_not_a_token", "status", "0" * 32)
    assert r.returncode == 3 and "The token is not valid" in r.stderr and "HTTP 401" in r.stderr

    r = client(embedded, None, "status", "0" * 32)
    assert r.returncode == 2 and "AUTOGRADER_TOKEN" in r.stderr

    r = client(embedded, "alice", "submit", str(tmp_path / "missing.ipynb"), "-a", HW1)
    assert r.returncode == 2 and "there is no file" in r.stderr

    r = client(embedded, "alice", "status", "0" * 32, server=f"http://127.0.0.1:{free_port()}")
    assert r.returncode == 4 and "cannot reach the autograder" in r.stderr

    r = client(embedded, "alice", "regrade", "--assignment", HW1)
    assert r.returncode == 3 and "Only the course's TAs and instructors" in r.stderr

    r = client(embedded, "alice", "regrade")
    assert r.returncode == 2  # argparse: one of --submission / --assignment is required


def test_regrade_an_assignment_and_a_submission_with_wait(embedded: Stack) -> None:
    graded = embedded.grade("bob", HW1, "starter.ipynb", course_notebook(HW1, "starter"))
    r = client(
        embedded,
        "tina",
        "regrade",
        "--assignment",
        HW1,
        "--wait",
        "--reason",
        "cli test",
        timeout=600,
    )
    assert r.returncode == 0, r.stderr + r.stdout
    assert "regrade of hw1-training-basics: batch" in r.stdout
    assert ", 0 failed" in r.stdout and "done:" in r.stdout

    r = client(
        embedded,
        "tina",
        "regrade",
        "--submission",
        graded["id"],
        "--wait",
        "--exercise",
        "early_stopping_epoch",
    )
    assert r.returncode == 0, r.stderr + r.stdout
    assert f"regrade of submission {graded['id']} queued as job" in r.stdout
    assert "Score: 0 / " in r.stdout
    with embedded.client("tina") as c:
        jobs = c.get(f"/api/v1/submissions/{graded['id']}/jobs").json()
    assert [j["reason"] for j in jobs][-2:] == ["cli test", "regrade"]
    assert jobs[-1]["exercises"] == ["early_stopping_epoch"]

    r = client(embedded, "tina", "regrade", "--submission", graded["id"], "--version", "f" * 64)
    assert r.returncode != 0 and "has no version" in r.stderr, r.stderr + r.stdout


def test_gradebook_download(embedded: Stack, tmp_path: Path) -> None:
    with embedded.client("ivan") as c:
        probe = c.get("/api/v1/courses/dlp/gradebook.csv")
    assert probe.status_code == 200, probe.text
    target = tmp_path / "book.csv"
    r = client(embedded, "ivan", "gradebook", "--course", "dlp", "--output", str(target))
    assert r.returncode == 0, r.stderr
    assert target.read_bytes() == probe.content
    rows = list(csv.reader(io.StringIO(target.read_text())))
    assert rows[0][0] == "student"
    to_stdout = client(embedded, "ivan", "gradebook", "--course", "dlp")
    assert to_stdout.returncode == 0 and to_stdout.stdout.splitlines()[0].startswith("student")

    r = client(embedded, "alice", "gradebook", "--course", "dlp")
    assert r.returncode == 3 and "HTTP 403" in r.stderr
