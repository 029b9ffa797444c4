"""The OpenAPI document describes the service: a bounded schemathesis run (examples,
coverage and fuzzing phases) as a student and as an instructor finds no server error,
no undocumented status code, no body outside its schema and no wrong content type.

Against a distributed stack of its own (PostgreSQL, Redis, no worker: what the run
queues is never graded), so the fuzzed PATCHes, regrades and token revocations touch
no other test. The path parameters are pinned to real objects (the bundled course, a
real submission and batch), so the run reaches the handlers' logic, not only 404s.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.notebooks import course_notebook
from tests.support.paths import BIN, HW1
from tests.support.stack import Stack, distributed_stack

CHECKS = (
    "not_a_server_error,status_code_conformance,response_schema_conformance,"
    "content_type_conformance,unsupported_method,allow_header_conformance"
)
SECONDS_PER_ROLE = 45


@pytest.fixture(scope="module")
def contract_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = distributed_stack(tmp_path_factory.mktemp("contract"), workers=0)
    try:
        for name, role in (("sam", "student"), ("ian", "instructor"), ("dummy", "student")):
            stack.add_user(name, role)
        yield stack
    finally:
        stack.stop()


def config(stack: Stack, folder: Path) -> Path:
    response = stack.submit("sam", HW1, "solution.ipynb", course_notebook(HW1, "solution"))
    assert response.status_code == 202, response.text
    with stack.client("ian") as c:
        batch = c.post(f"/api/v1/courses/dlp/assignments/{HW1}/regrade", json={})
    assert batch.status_code == 202, batch.text
    path = folder / "schemathesis.toml"
    path.write_text(
        "\n".join(
            [
                "[parameters]",
                '"path.course" = "dlp"',
                f'"path.assignment" = "{HW1}"',
                '"path.exercise" = "label_smoothing_ce"',
                f'"path.submission_id" = "{response.json()["id"]}"',
                f'"path.batch_id" = "{batch.json()["batch_id"]}"',
                '"path.name" = "dummy"',
                '"path.student" = "dummy"',
                "",
            ]
        )
    )
    return path


@pytest.mark.timeout(300)
@pytest.mark.parametrize("user", ["sam", "ian"])
def test_schemathesis_finds_nothing(contract_stack: Stack, user: str, tmp_path: Path) -> None:
    stack = contract_stack
    schema = httpx.get(f"{stack.base_url}/openapi.json").json()
    assert "HTTPValidationError" not in str(schema)  # 422 is {"detail": string} too
    toml = config(stack, tmp_path)
    out = subprocess.run(
        [
            str(BIN / "st"),
            "--config-file",
            str(toml),
            "run",
            f"{stack.base_url}/openapi.json",
            "-H",
            f"Authorization: Bearer {stack.tokens[user]}",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "20",
            # One worker: hypothesis parses lambda sources with ast.parse, which CPython 3.11
            # can fail from two threads at once ("AST constructor recursion depth mismatch").
            "--max-time",
            str(SECONDS_PER_ROLE),
            "--seed",
            "12",
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--no-color",
            "--warnings",
            "off",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    report = out.stdout[-6000:] + out.stderr[-2000:]
    assert out.returncode == 0, report
    assert "No issues found" in out.stdout, report
    assert httpx.get(f"{stack.base_url}/healthz").status_code == 200
