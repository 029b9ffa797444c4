"""Bad input gets the documented code and a clear sentence; nothing is stored.

Most run in-process (fast tier: the real app over SQLite); the huge uploads go through
a real server (uvicorn's streaming, the body cut off while it arrives)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import save

from tests.support.inprocess import InProcessService
from tests.support.notebooks import course_notebook
from tests.support.paths import HW1
from tests.support.stack import Stack
from tests.support.staffing import Deployment


def submission_count(stack: Deployment) -> int:
    with stack.client("tina") as c:
        response = c.get(f"/api/v1/courses/dlp/assignments/{HW1}/submissions")
    assert response.status_code == 200
    return len(response.json())


def blob_count(stack: Deployment) -> int:
    root = Path(stack.env["AUTOGRADER_DATA_DIR"]) / "blobs"
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0


@pytest.mark.fast
@pytest.mark.parametrize(
    ("filename", "data", "words"),
    [
        ("homework.ipynb", b"", "empty"),
        ("homework.ipynb", b'{"cells": [{"cell_type": "code", "sour', "not valid JSON"),
        ("homework.ipynb", b'{"hello": "world"}', "not a Jupyter notebook"),
        ("homework.ipynb", b"\xff\xfe\x00garbage", "UTF-8"),
        ("homework.docx", b"PK\x03\x04 something", "Unsupported file type"),
        ("model.pt", b"\x80\x04\x95 not a zip", "TorchScript"),
        ("model.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}", "safetensors"),
    ],
)
def test_unreadable_files_are_refused_with_a_sentence(
    service: InProcessService, filename: str, data: bytes, words: str
) -> None:
    before, blobs_before = submission_count(service), blob_count(service)
    response = service.submit("alice", HW1, filename, data)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and words in detail and detail[-1] in ".?!", detail
    assert submission_count(service) == before
    assert blob_count(service) == blobs_before
    assert service.queue.sent == []


def test_huge_upload_is_refused_without_storing(pg_stack: Stack) -> None:
    before, blobs_before = submission_count(pg_stack), blob_count(pg_stack)
    huge = b"{" + b" " * (200 * 1024 * 1024) + b"}"
    response = pg_stack.submit("alice", HW1, "huge.ipynb", huge)
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
    assert submission_count(pg_stack) == before
    assert blob_count(pg_stack) == blobs_before
    assert httpx.get(f"{pg_stack.base_url}/healthz").status_code == 200


def test_huge_chunked_upload_is_refused(pg_stack: Stack) -> None:
    """No Content-Length: the limit is enforced while streaming."""
    boundary = "XyZ"

    def body():  # type: ignore[no-untyped-def]
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.ipynb"\r\n\r\n'
        ).encode()
        for _ in range(40):
            yield b" " * (1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    with pg_stack.client("alice") as c:
        response = c.post(
            f"/api/v1/courses/dlp/assignments/{HW1}/submissions",
            content=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert response.status_code == 413, response.text


@pytest.mark.fast
def test_unknown_course_and_assignment_are_404(service: InProcessService) -> None:
    nb = course_notebook(HW1, "solution")
    response = service.submit("alice", "hw99-nope", "a.ipynb", nb)
    assert response.status_code == 404
    assert "hw99-nope" in response.json()["detail"]
    with service.client("alice") as c:
        response = c.post(
            "/api/v1/courses/nope/assignments/hw1-training-basics/submissions",
            files={"file": ("a.ipynb", nb)},
        )
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


@pytest.mark.fast
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Token abc"},
    ],
)
def test_missing_or_wrong_token_is_401(service: InProcessService, headers: dict[str, str]) -> None:
    before = submission_count(service)
    response = service.client().post(
        f"/api/v1/courses/dlp/assignments/{HW1}/submissions",
        files={"file": ("a.ipynb", course_notebook(HW1, "solution"))},
        headers=headers,
    )
    assert response.status_code == 401
    assert response.json()["detail"]
    assert submission_count(service) == before


@pytest.mark.fast
def test_missing_file_field_is_422(service: InProcessService) -> None:
    with service.client("alice") as c:
        response = c.post(
            f"/api/v1/courses/dlp/assignments/{HW1}/submissions",
            files={"notebook": ("a.ipynb", b"{}")},
        )
    assert response.status_code == 422
    assert "'file'" in response.json()["detail"]


@pytest.mark.fast
def test_a_course_one_is_not_enrolled_in_is_404(service: InProcessService) -> None:
    token = service.add_user("outsider", "student")
    assert token.startswith("ag_")
    response = service.client(token=token).get("/api/v1/courses/other/assignments")
    assert response.status_code == 404
    assert "other" in response.json()["detail"]


def test_service_still_answers_after_bad_input(pg_stack: Stack) -> None:
    response = httpx.get(f"{pg_stack.base_url}/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


@pytest.mark.fast
def test_a_model_file_for_an_assignment_without_model_exercises_is_422(
    service: InProcessService,
) -> None:
    before = submission_count(service)
    response = service.submit(
        "alice", "hw3-architectures", "model.safetensors", save({"weight": torch.zeros(4, 4)})
    )
    assert response.status_code == 422, response.text
    assert "answers none of the exercises" in response.json()["detail"]
    assert submission_count(service) == before
