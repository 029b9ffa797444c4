"""Publishing an assignment folder uploaded by an instructor.

1. `prepare_candidate`: the archive is unpacked into a fresh folder of ours
   (core/archives.py bounds and refuses), the assignment folder found in it, its
   assignment.toml read (never its Python: that runs only on a worker), its required
   files checked, and its bundle put in the blob store.
2. `open_publication`: a `publications` row (queued) names the bundle; a worker's
   self-check task (worker/selfcheck_task.py) claims it (`claim_check`), runs the
   self-check on the bundle it fetches from the blob store, and writes its report
   (`record_check`).
3. The API waits for the row (`outcome`), then either publishes (`publish_passed`: the
   version row and the course's assignment brought to it, with an audit event, in one
   transaction) or gives up (`abandon`). Every move of the row is a conditional
   UPDATE: what a late worker writes after the API gave up publishes nothing.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.archives import ArchiveLimits, unpack_archive
from core.audit import record
from core.blobs import Blobs, get_blob_store
from core.bundles import MAX_BUNDLE_BYTES, StoredVersion, build_bundle, record_version
from core.errors import Conflict, NotFound, Unreadable
from core.models import Assignment, AssignmentVersion, Course, utcnow
from core.policy import normalize_late_policy
from core.publication_models import Publication
from graders.course import AssignmentMeta, CourseError, load_assignment_meta

#: What an assignment folder must hold (the self-check reads each).
REQUIRED_FILES = (
    "assignment.toml",
    "reference.py",
    "tests.py",
    "notebooks/starter.ipynb",
    "notebooks/solution.ipynb",
)
SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Statuses a worker writes when it is done; the API reads them.
FINISHED = ("passed", "failed", "error")
MAX_STARTER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Candidate:
    folder: Path
    meta: AssignmentMeta
    bundle_sha256: str
    size_bytes: int


def prepare_candidate(
    data: bytes, work: Path, limits: ArchiveLimits | None = None, store: Blobs | None = None
) -> Candidate:
    """The uploaded archive as a checked assignment folder under `work` (an empty
    folder of the caller's, removed by the caller), with its bundle stored."""
    extracted = work / "archive"
    unpack_archive(data, extracted, limits)
    root, name = _assignment_root(extracted)
    slug = _slug_of(root, name)
    folder = work / "assignment" / slug
    folder.parent.mkdir()
    root.rename(folder)
    for required in REQUIRED_FILES:
        if not (folder / required).is_file():
            raise Unreadable(
                f"The assignment folder has no {required} (an assignment "
                f"folder holds {', '.join(REQUIRED_FILES)})."
            )
    meta = _meta(folder)
    _check_starter(folder / "notebooks" / "starter.ipynb")
    bundle = build_bundle(folder)
    if len(bundle) > MAX_BUNDLE_BYTES:
        raise Unreadable(f"The assignment's bundle is larger than {MAX_BUNDLE_BYTES} bytes.")
    store = store or get_blob_store()
    sha = store.put_bytes(bundle, limit=MAX_BUNDLE_BYTES)
    return Candidate(folder, meta, sha, len(bundle))


def _assignment_root(extracted: Path) -> tuple[Path, str | None]:
    """The folder holding assignment.toml: the archive's root, or its one top folder
    (then its name is a fallback slug)."""
    if (extracted / "assignment.toml").is_file():
        return extracted, None
    entries = list(extracted.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / "assignment.toml").is_file():
        return entries[0], entries[0].name
    raise Unreadable(
        "The archive must hold one assignment folder: assignment.toml at its "
        "root, or inside a single top-level folder."
    )


def _slug_of(root: Path, folder_name: str | None) -> str:
    try:
        data = tomllib.loads((root / "assignment.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise Unreadable(f"assignment.toml cannot be read: {exc}.") from None
    slug = data.get("slug", folder_name)
    if slug is None:
        raise Unreadable(
            "assignment.toml has no slug (and the archive has no top-level "
            'folder to name the assignment): add `slug = "..."`.'
        )
    if not isinstance(slug, str) or not SLUG.match(slug):
        raise Unreadable(
            f"The assignment's slug {str(slug)[:80]!r} is not valid: up to 64 "
            "letters, digits, '_', '-' and '.', starting with a letter or digit."
        )
    return slug


def _meta(folder: Path) -> AssignmentMeta:
    """assignment.toml as the course loader reads it, and as the database must store it;
    the loader's sentence (without our temp folder's path) when it cannot."""
    try:
        meta = load_assignment_meta(folder)
        normalize_late_policy(meta.late_policy)
    except CourseError as exc:
        raise Unreadable(_without(str(exc), folder)) from None
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        what = f"the key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise Unreadable(
            f"assignment.toml is not valid: {_without(what, folder)} ({type(exc).__name__})."
        ) from None
    if meta.counting not in ("last", "best"):
        raise Unreadable(
            f"assignment.toml: counting must be 'last' or 'best', not {str(meta.counting)[:40]!r}."
        )
    if not isinstance(meta.title, str) or not meta.title.strip() or len(meta.title) > 200:
        raise Unreadable("assignment.toml: the title must be text of 1 to 200 characters.")
    for exercise in meta.exercises:
        if not isinstance(exercise.slug, str) or not SLUG.match(exercise.slug):
            raise Unreadable(
                f"assignment.toml: {str(exercise.slug)[:80]!r} is not a valid "
                "exercise slug (up to 64 letters, digits, '_', '-', '.')."
            )
        if exercise.device not in ("cpu", "gpu"):
            raise Unreadable(
                f"assignment.toml: exercise {exercise.slug!r} has device "
                f"{str(exercise.device)[:20]!r}, not 'cpu' or 'gpu'."
            )
        if not 0 <= exercise.points <= 1e6:
            raise Unreadable(
                f"assignment.toml: exercise {exercise.slug!r} has {exercise.points:g} points."
            )
    return meta


def _check_starter(path: Path) -> None:
    """Students download the starter as it is: it must be a notebook."""
    if path.stat().st_size > MAX_STARTER_BYTES:
        raise Unreadable(f"notebooks/starter.ipynb is larger than {MAX_STARTER_BYTES} bytes.")
    try:
        notebook = json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        notebook = None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise Unreadable("notebooks/starter.ipynb is not a Jupyter notebook (JSON with `cells`).")


def _without(message: str, folder: Path) -> str:
    return message.replace(f"{folder}/", "").replace(str(folder), "the folder")


# -- the publication row ----------------------------------------------------------------
def open_publication(session: Session, course: Course, user_id: int, candidate: Candidate) -> str:
    """A queued publication for the candidate (committed); its id."""
    same_files = session.get(AssignmentVersion, candidate.meta.version)
    if same_files is not None and same_files.slug != candidate.meta.slug:
        # A version names one folder (workers unpack it under that slug).
        raise Conflict(
            f"These exact files are already stored as the assignment "
            f"{same_files.slug!r}; give this one a slug in assignment.toml."
        )
    row = Publication(
        course_id=course.id,
        requested_by=user_id,
        slug=candidate.meta.slug,
        version=candidate.meta.version,
        bundle_sha256=candidate.bundle_sha256,
        size_bytes=candidate.size_bytes,
    )
    session.add(row)
    session.commit()
    return row.id


def claim_check(session: Session, publication_id: str, host: str) -> Publication | None:
    """The worker takes a queued publication (None: gone, taken or given up)."""
    row = session.get(Publication, publication_id)
    if row is None or row.status != "queued":
        return None
    result = session.execute(
        update(Publication)
        .where(
            Publication.id == publication_id,
            Publication.status == "queued",
            Publication.attempt == row.attempt,
        )
        .values(status="running", attempt=row.attempt + 1, worker_host=host[:255])
    )
    session.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.refresh(row)
    return row


def record_check(
    session: Session,
    publication_id: str,
    attempt: int,
    status: str,
    report: list[dict[str, Any]],
    detail: str,
) -> bool:
    """The worker's outcome; False if the API gave up meanwhile."""
    assert status in FINISHED
    result = session.execute(
        update(Publication)
        .where(
            Publication.id == publication_id,
            Publication.status == "running",
            Publication.attempt == attempt,
        )
        .values(status=status, report=report, detail=detail[:4000], finished_at=utcnow())
    )
    session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Outcome:
    status: str
    report: list[dict[str, Any]]
    detail: str


def outcome(session: Session, publication_id: str) -> Outcome:
    row = session.get(Publication, publication_id)
    if row is None:
        raise NotFound(f"There is no publication {publication_id!r}.")
    return Outcome(row.status, list(row.report or []), row.detail)


def abandon(session: Session, publication_id: str, detail: str) -> bool:
    """Stop waiting: a queued or running publication will never be published."""
    result = session.execute(
        update(Publication)
        .where(Publication.id == publication_id, Publication.status.in_(("queued", "running")))
        .values(status="abandoned", detail=detail[:4000], finished_at=utcnow())
    )
    session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def publish_passed(
    session: Session, publication_id: str, meta: AssignmentMeta, actor_id: int
) -> tuple[StoredVersion, str | None]:
    """A passed publication becomes the assignment's current version (one commit: the
    version row, the assignment and its exercises, the audit event). Returns what was
    stored, and the version it replaced (None: a new assignment)."""
    row = session.get(Publication, publication_id)
    if row is None:
        raise NotFound(f"There is no publication {publication_id!r}.")
    course = session.get(Course, row.course_id)
    assert course is not None
    result = session.execute(
        update(Publication)
        .where(Publication.id == publication_id, Publication.status == "passed")
        .values(status="published")
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise Conflict("This publication is not waiting to be published.")
    previous = session.scalar(
        select(Assignment.version).where(
            Assignment.course_id == course.id, Assignment.slug == meta.slug
        )
    )
    try:
        stored = record_version(session, course, meta, row.bundle_sha256, row.size_bytes)
    except CourseError as exc:
        session.rollback()
        raise Unreadable(_without(str(exc), meta.folder)) from None
    record(
        session,
        actor_id,
        course.id,
        "publish_assignment",
        f"assignment:{meta.slug}",
        {
            "version": meta.version,
            "previous_version": previous or None,
            "bundle_sha256": row.bundle_sha256,
            "publication_id": row.id,
            "new_version": stored.created,
        },
    )
    session.commit()
    return stored, previous or None
