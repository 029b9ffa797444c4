"""Assignment versions as bundles: a folder becomes one content-addressed blob.

A bundle is a gzipped tar of the assignment folder, built deterministically (sorted
names, no times, owners or modes beyond 0644/0755), so the same folder always gives
the same bytes and is stored once. It holds exactly the files that
graders.course.folder_version hashes, so a worker can check what it unpacked against
the version the job names. `store_assignment_version` is how a folder enters the
service: `autograder migrate` seeds the bundled course with it, and publishing an
assignment builds on it.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from core.blobs import Blobs, get_blob_store
from core.models import AssignmentVersion, Course
from graders.course import AssignmentMeta

#: Bundles are read back into memory whole when unpacked: keep them reasonable.
MAX_BUNDLE_BYTES = 256 * 1024 * 1024


class BundleError(Exception):
    """The bundle cannot be built or unpacked; the message says why."""


def bundle_files(folder: Path) -> list[Path]:
    """The files a bundle (and graders.course.folder_version) covers, sorted."""
    return [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]


def build_bundle(folder: Path) -> bytes:
    """The folder as a deterministic .tar.gz (paths relative to the folder)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for path in bundle_files(folder):
            rel = path.relative_to(folder)
            for parent in reversed(rel.parents[:-1]):
                name = parent.as_posix()
                if name not in dirs:
                    dirs.add(name)
                    tar.addfile(_info(name, tarfile.DIRTYPE, 0o755, 0))
            data = path.read_bytes()
            tar.addfile(_info(rel.as_posix(), tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="", compresslevel=6) as gz:
        gz.write(raw.getvalue())
    data = out.getvalue()
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(
            f"{folder}: the bundle is {len(data)} bytes, more than {MAX_BUNDLE_BYTES}"
        )
    return data


def _info(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def unpack_bundle(source: BinaryIO, dest: Path) -> None:
    """Unpack into `dest` (which must not exist yet): regular files and folders only,
    nothing outside `dest`, readable by every uid (the sandbox binds public/)."""
    dest.mkdir(parents=True)
    dest.chmod(0o755)
    try:
        with tarfile.open(fileobj=source, mode="r:gz") as tar:
            for member in tar.getmembers():
                if not (member.isfile() or member.isdir()):
                    raise BundleError(f"bundle member {member.name!r} is not a file or folder")
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"cannot unpack the bundle: {exc}") from exc
    for path in dest.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


@dataclass(frozen=True)
class StoredVersion:
    slug: str
    version: str
    bundle_sha256: str
    size_bytes: int
    created: bool


def put_bundle(folder: Path, store: Blobs | None = None) -> tuple[AssignmentMeta, str, int]:
    """Build the folder's bundle and put it in the blob store: (meta, sha256, size).

    Done before the caller's session writes anything: with SQLite, a blob written
    through another connection would wait on the session's lock.
    """
    from graders.course import load_assignment_meta

    meta = load_assignment_meta(folder)
    data = build_bundle(folder)
    sha = (store or get_blob_store()).put_bytes(data, limit=MAX_BUNDLE_BYTES)
    return meta, sha, len(data)


def record_version(
    session: Session, course: Course, meta: AssignmentMeta, sha: str, size: int
) -> StoredVersion:
    """The `assignment_versions` row for a stored bundle, and the course's assignment
    row and exercises brought to that version (the caller commits)."""
    from core.course_sync import sync_assignment

    row = session.get(AssignmentVersion, meta.version)
    created = row is None
    if row is None:
        session.add(
            AssignmentVersion(
                version=meta.version, slug=meta.slug, bundle_sha256=sha, size_bytes=size
            )
        )
    elif row.bundle_sha256 != sha:
        # Same files, other bytes (another compressor): either bundle unpacks to them.
        row.bundle_sha256, row.size_bytes = sha, size
    sync_assignment(session, course, meta)
    session.flush()
    return StoredVersion(meta.slug, meta.version, sha, size, created)


def store_assignment_version(
    session: Session, course: Course, folder: Path, store: Blobs | None = None
) -> StoredVersion:
    """Store an assignment folder as a version: its bundle in the blob store (once), an
    `assignment_versions` row naming it, and the course's assignment row and exercises
    updated to that version. Returns what was stored; the caller commits.

    Staff changes made in the database (deadline moved, release) are kept: only the
    folder's own facts (titles, exercises, points, version) are overwritten.
    """
    meta, sha, size = put_bundle(folder, store)
    return record_version(session, course, meta, sha, size)


def version_bundle(session: Session, version: str) -> AssignmentVersion | None:
    return session.get(AssignmentVersion, version)
