"""Publishing assignments to a running distributed service (PostgreSQL, Redis, worker
processes): `POST /api/v1/courses/{course}/assignments` and `autograder assignment
publish`. The self-check runs on a worker, from the bundle in the blob store; a passed
folder is graded at once without a restart, a failed one is refused with its report and
leaves nothing published; hostile archives are refused; only instructors publish.

Everything happens in a course of its own (tests/support/staffing.clone_course), so the
bundled course's assignment list never changes under other tests.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cli.main import main as cli_main
from core.models import AssignmentVersion, AuditEvent, GradingJob
from core.publication_models import Publication
from graders.authoring.bundle import pack
from graders.authoring.importer import import_notebook
from graders.notebooks import with_extra_cell
from tests.support.hostile_archives import entry, tar_gz, zip_bomb, zipped
from tests.support.paths import FIXTURES
from tests.support.stack import Stack
from tests.support.staffing import clone_course, stack_db, wait_graded
from tests.test_authoring_import import _nbgrader_secrets, _otter_secrets

COURSE = "pub"
MEMBERS = {"pub-ivan": "instructor", "pub-tina": "ta", "pub-alice": "student"}
AUTHORING = FIXTURES / "authoring"
#: (format, source, slug, a buggy cell, {exercise: score} of the buggy notebook).
SOURCES: dict[str, tuple[str, Path, str, str, dict[str, float]]] = {
    "nbgrader": (
        "nbgrader",
        AUTHORING / "nbgrader_source.ipynb",
        "pub-regularisation",
        "def l2_penalty(w, lam):\n    return lam * (w ** 2).mean()",
        {"test_l2_penalty": 0.0, "test_clip_gradients": 3.0, "test_tiny_mlp": 2.0},
    ),
    "otter": (
        "otter",
        AUTHORING / "otter_source.ipynb",
        "pub-softmax",
        "def softmax(x):\n    e = torch.exp(x)\n    return e / e.sum(-1, keepdim=True)",
        {"softmax": 2.5, "accuracy": 2.0, "temperature": 1.0},
    ),
}
FULL = {
    "nbgrader": {"test_l2_penalty": 2.0, "test_clip_gradients": 3.0, "test_tiny_mlp": 2.0},
    "otter": {"softmax": 3.0, "accuracy": 2.0, "temperature": 1.0},
}


@pytest.fixture(scope="module")
def course(pg_stack: Stack) -> str:
    return clone_course(pg_stack, COURSE, MEMBERS, assignments=())


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folders = {}
    for name, (fmt, source, slug, _, _) in SOURCES.items():
        folders[name] = import_notebook(
            source, fmt, slug, tmp_path_factory.mktemp(name) / slug
        ).folder
    return folders


def publish_cli(
    stack: Stack,
    folder: Path,
    capsys: pytest.CaptureFixture[str],
    user: str = "pub-ivan",
    course: str = COURSE,
) -> tuple[int, str, str]:
    code = cli_main(
        [
            "assignment",
            "publish",
            str(folder),
            "--course",
            course,
            "--server",
            stack.base_url,
            "--token",
            stack.tokens[user],
        ]
    )
    out, err = capsys.readouterr()
    return code, out, err


def post_bundle(
    stack: Stack,
    data: bytes,
    user: str | None = "pub-ivan",
    course: str = COURSE,
    name: str = "a.tar.gz",
) -> Any:
    with stack.client(user) as c:
        c.timeout = 600
        return c.post(f"/api/v1/courses/{course}/assignments", files={"bundle": (name, data)})


def assignment_slugs(stack: Stack, user: str = "pub-alice") -> list[str]:
    with stack.client(user) as c:
        response = c.get(f"/api/v1/courses/{COURSE}/assignments")
    assert response.status_code == 200, response.text
    return [a["slug"] for a in response.json()]


def jobs_of(stack: Stack, submission_id: str) -> list[dict[str, Any]]:
    with stack.client("pub-tina") as c:
        response = c.get(f"/api/v1/submissions/{submission_id}/jobs")
    assert response.status_code == 200, response.text
    return list(response.json())


def graded(
    stack: Stack, slug: str, notebook: bytes, user: str = "pub-alice", jobs: int = 1
) -> dict[str, Any]:
    with stack.client(user) as c:
        response = c.post(
            f"/api/v1/courses/{COURSE}/assignments/{slug}/submissions",
            files={"file": ("answer.ipynb", notebook)},
        )
    assert response.status_code == 202, response.text
    return wait_graded(stack, user, response.json()["id"], jobs=jobs, staff="pub-tina")


def scores(view: dict[str, Any]) -> dict[str, float]:
    """The autograded exercises' scores (the manual ones wait for a grader)."""
    return {
        e["slug"]: e["score"]
        for e in view["exercises"]
        if e["slug"] not in ("explain_l2", "discussion")
    }


# -- who may publish ----------------------------------------------------------------------
def test_only_the_course_instructor_publishes(
    pg_stack: Stack, course: str, imported: dict[str, Path]
) -> None:
    data = pack(imported["otter"])
    for user, status in (("pub-alice", 403), ("pub-tina", 403), (None, 401)):
        response = post_bundle(pg_stack, data, user)
        assert response.status_code == status, response.text
        assert response.json()["detail"].endswith(".")
    assert post_bundle(pg_stack, data, course="no-such-course").status_code == 404
    # An instructor of another course (dlp's ivan) is not enrolled in this one.
    assert post_bundle(pg_stack, data, user="ivan").status_code == 403
    assert assignment_slugs(pg_stack) == []


# -- round trips --------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["nbgrader", "otter"])
def test_an_imported_assignment_is_published_and_graded_without_a_restart(
    which: str,
    pg_stack: Stack,
    course: str,
    imported: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, _, slug, buggy_cell, buggy_scores = SOURCES[which]
    folder = imported[which]
    code, out, err = publish_cli(pg_stack, folder, capsys)
    assert code == 0, out + err
    version = out.strip().splitlines()[-1]
    assert len(version) >= 12 and " " not in version
    assert slug in assignment_slugs(pg_stack)
    with stack_db(pg_stack) as db:
        stored = db.get(AssignmentVersion, version)
        assert stored is not None and stored.slug == slug
        event = db.scalar(
            select(AuditEvent).where(
                AuditEvent.action == "publish_assignment", AuditEvent.target == f"assignment:{slug}"
            )
        )
        assert event is not None and event.details["version"] == version

    # Students download the starter through the API: the folder's own, no secret in it.
    with pg_stack.client("pub-alice") as c:
        starter = c.get(f"/api/v1/courses/{COURSE}/assignments/{slug}/starter")
        listing = c.get(f"/api/v1/courses/{COURSE}/assignments").text
    assert starter.status_code == 200, starter.text
    assert starter.headers["content-type"].startswith("application/x-ipynb+json")
    assert f'filename="{slug}.ipynb"' in starter.headers["content-disposition"]
    assert starter.content == (folder / "notebooks" / "starter.ipynb").read_bytes()

    solution = (folder / "notebooks" / "solution.ipynb").read_bytes()
    full = graded(pg_stack, slug, solution)
    # Every autograded exercise at full marks (manual ones wait for a grader).
    assert full["status"] == "graded" and scores(full) == FULL[which], full
    buggy = graded(pg_stack, slug, with_extra_cell(solution, buggy_cell))
    assert scores(buggy) == buggy_scores, buggy
    stub = graded(pg_stack, slug, starter.content)
    assert stub["score"] == 0 and scores(stub) == dict.fromkeys(FULL[which], 0.0), stub
    for view in (full, buggy, stub):
        assert jobs_of(pg_stack, view["id"])[-1]["assignment_version"] == version

    secrets = _nbgrader_secrets() if which == "nbgrader" else _otter_secrets()
    assert len(secrets) >= 8
    readable = "\n".join([starter.text, listing, *(json.dumps(v) for v in (full, buggy, stub))])
    notebook_sources = "\n".join("".join(cell["source"]) for cell in starter.json()["cells"])
    leaked = [s for s in secrets if len(s) > 6 and (s in readable or s in notebook_sources)]
    assert not leaked, leaked


# -- refusals -----------------------------------------------------------------------------
def test_a_solution_without_full_marks_is_refused_with_the_report(
    pg_stack: Stack,
    course: str,
    imported: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "pub-broken"
    shutil.copytree(imported["nbgrader"], folder)
    toml = folder / "assignment.toml"
    toml.write_text(toml.read_text().replace('slug = "pub-regularisation"', 'slug = "pub-broken"'))
    solution = folder / "notebooks" / "solution.ipynb"
    solution.write_bytes(with_extra_cell(solution.read_bytes(), SOURCES["nbgrader"][3]))
    before = assignment_slugs(pg_stack)
    with stack_db(pg_stack) as db:
        versions = db.scalar(select(func.count()).select_from(AssignmentVersion))

    code, out, err = publish_cli(pg_stack, folder, capsys)
    assert code == 1, out + err
    assert "solution" in out and "FAIL" in out  # the report, as a table
    assert "not published" in err and "test_l2_penalty" in err

    response = post_bundle(pg_stack, pack(folder))
    assert response.status_code == 422
    body = response.json()
    assert body["detail"].startswith("The self-check failed")
    rows = {r["variant"]: r for r in body["report"]}
    assert rows["solution"]["ok"] is False and rows["solution"]["scores"]["test_l2_penalty"] == 0
    assert rows["starter"]["ok"] is True

    assert assignment_slugs(pg_stack) == before
    with stack_db(pg_stack) as db:
        assert db.scalar(select(func.count()).select_from(AssignmentVersion)) == versions
        outcomes = db.scalars(select(Publication.status).where(Publication.slug == "pub-broken"))
        assert sorted(outcomes) == ["failed", "failed"]


def _hostile() -> dict[str, bytes]:
    escape = f"escape-{uuid.uuid4().hex}.txt"
    ok = (entry("hw/assignment.toml"), b'slug = "hw"\n')
    return {
        "traversal": tar_gz(ok, (entry(f"hw/../../{escape}"), b"pwned")),
        "absolute": zipped(("hw/assignment.toml", b""), (f"/tmp/{escape}", b"pwned")),
        "symlink": tar_gz(ok, (entry("hw/link", tarfile.SYMTYPE, "/etc/passwd"), None)),
        "bomb": zip_bomb(1024**3),
        "many": zipped(*[(f"hw/f{i}.txt", b"") for i in range(2100)]),
        "garbage": b"this is not an archive at all" * 100,
    }


def test_hostile_archives_are_refused_and_write_nothing_outside(
    pg_stack: Stack, course: str
) -> None:
    temp = Path(tempfile.gettempdir())
    before = set(temp.glob("publish-*"))
    for name, data in _hostile().items():
        response = post_bundle(pg_stack, data)
        assert response.status_code == 422, (name, response.text)
        sentence = response.json()["detail"]
        assert sentence.endswith(".") and len(sentence) < 300, (name, sentence)
    assert not list(temp.glob("escape-*.txt")) and not list(Path("/").glob("escape-*.txt"))
    # Each request's temp folder is gone with it.
    assert set(temp.glob("publish-*")) <= before
    over = post_bundle(pg_stack, b"\x1f\x8b" + bytes(33 * 1024 * 1024))
    assert over.status_code == 413, over.text
    assert "hw" not in assignment_slugs(pg_stack)


def test_a_malformed_folder_is_refused_with_the_loaders_sentence(
    pg_stack: Stack, course: str, imported: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "pub-malformed"
    shutil.copytree(imported["otter"], folder)
    (folder / "assignment.toml").write_text('slug = "pub-malformed"\ntitle = "x"\n[[exercises]\n')
    response = post_bundle(pg_stack, pack(folder))
    assert response.status_code == 422
    assert response.json()["detail"].startswith("assignment.toml")
    assert str(tmp_path) not in response.text and "/tmp/" not in response.text
    (folder / "assignment.toml").write_text('slug = "pub-malformed"\ntitle = "x"\n')
    assert "no [[exercises]]" in post_bundle(pg_stack, pack(folder)).json()["detail"]
    shutil.copy(imported["otter"] / "assignment.toml", folder / "assignment.toml")
    (folder / "tests.py").unlink()
    response = post_bundle(pg_stack, pack(folder))
    assert response.status_code == 422 and "no tests.py" in response.json()["detail"]


# -- versions -----------------------------------------------------------------------------
def test_republishing_makes_a_new_version_that_new_jobs_and_regrades_use(
    pg_stack: Stack,
    course: str,
    imported: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    slug = "pub-versions"
    folder = tmp_path / slug
    shutil.copytree(imported["otter"], folder)
    toml = folder / "assignment.toml"
    toml.write_text(toml.read_text().replace('slug = "pub-softmax"', f'slug = "{slug}"'))
    first = post_bundle(pg_stack, pack(folder))
    assert first.status_code == 201, first.text
    v1 = first.json()["version"]
    assert first.json()["new_version"] is True and first.json()["previous_version"] is None
    solution = (folder / "notebooks" / "solution.ipynb").read_bytes()
    old = graded(pg_stack, slug, solution)
    assert jobs_of(pg_stack, old["id"])[-1]["assignment_version"] == v1

    toml.write_text(
        toml.read_text().replace("title = ", 'title = "Softmax, again"\nold_title = ', 1)
    )
    code, out, err = publish_cli(pg_stack, folder, capsys)
    assert code == 0, out + err
    v2 = out.strip().splitlines()[-1]
    assert v2 != v1 and f"replacing {v1}" in out
    with pg_stack.client("pub-alice") as c:
        titles = {
            a["slug"]: a["title"] for a in c.get(f"/api/v1/courses/{COURSE}/assignments").json()
        }
    assert titles[slug] == "Softmax, again"

    new = graded(pg_stack, slug, solution)
    assert jobs_of(pg_stack, new["id"])[-1]["assignment_version"] == v2
    with pg_stack.client("pub-tina") as c:
        current = c.post(f"/api/v1/submissions/{old['id']}/regrade", json={})
        assert current.status_code == 202, current.text
        wait_graded(pg_stack, "pub-alice", old["id"], jobs=2, staff="pub-tina")
        pinned = c.post(f"/api/v1/submissions/{old['id']}/regrade", json={"version": v1})
        assert pinned.status_code == 202, pinned.text
        regraded = wait_graded(pg_stack, "pub-alice", old["id"], jobs=3, staff="pub-tina")
        bogus = c.post(f"/api/v1/submissions/{old['id']}/regrade", json={"version": "f" * 64})
        assert bogus.status_code == 422 and "has no version" in bogus.json()["detail"]
        other = c.post(
            f"/api/v1/courses/{COURSE}/assignments/{slug}/regrade",
            json={"version": _other_version(pg_stack, slug)},
        )
        assert other.status_code == 422
    versions = [j["assignment_version"] for j in jobs_of(pg_stack, old["id"])]
    assert versions == [v1, v2, v1]
    assert scores(regraded) == FULL["otter"]
    with stack_db(pg_stack) as db:
        job_versions = set(db.scalars(select(GradingJob.assignment_version)))
    assert {v1, v2} <= job_versions


def _other_version(stack: Stack, slug: str) -> str:
    """A version of another assignment (not one this one ever had)."""
    with stack_db(stack) as db:
        version = db.scalar(
            select(AssignmentVersion.version).where(AssignmentVersion.slug != slug).limit(1)
        )
    assert version is not None
    return str(version)


def test_the_bundled_course_has_starters_too(pg_stack: Stack, course: str) -> None:
    with pg_stack.client("alice") as c:
        response = c.get("/api/v1/courses/dlp/assignments/hw1-training-basics/starter")
        missing = c.get("/api/v1/courses/dlp/assignments/hw9/starter")
    assert response.status_code == 200
    assert json.loads(response.content)["cells"]
    assert missing.status_code == 404
    with pg_stack.client("pub-alice") as c:  # not enrolled in dlp
        assert (
            c.get("/api/v1/courses/dlp/assignments/hw1-training-basics/starter").status_code == 403
        )
