"""Copying the course from reference/ into the database (idempotent): its metadata, and
each assignment's folder as a version bundle in the blob store (core/bundles.py), so
workers grade from what the database names, never from a checkout of their own."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.blobs import Blobs, get_blob_store
from core.models import Assignment, Course, Exercise
from core.policy import normalize_late_policy
from core.rubrics import sync_rubric
from graders.course import AssignmentMeta, CourseError, CourseMeta, load_course


def sync_course(session: Session, folder: Path, store: Blobs | None = None) -> CourseMeta:
    """Create or update the course, its assignments and exercises from the folder, and
    store each assignment's version bundle (once per version).

    Staff changes made in the database (deadline moved, release) are kept: only the
    folder's own facts (titles, exercises, points, version) are overwritten.
    """
    from core.bundles import put_bundle, record_version

    meta = load_course(folder)
    store = store or get_blob_store()
    store.prepare()
    bundles = [put_bundle(a.folder, store) for a in meta.assignments]
    course = session.scalar(select(Course).where(Course.slug == meta.slug))
    if course is None:
        course = Course(slug=meta.slug, title=meta.title)
        session.add(course)
        session.flush()
    course.title = meta.title
    for a_meta, sha, size in bundles:
        record_version(session, course, a_meta, sha, size)
    session.flush()
    return meta


def sync_assignment(session: Session, course: Course, a: AssignmentMeta) -> Assignment:
    """The course's row for this assignment, created or brought to the folder's facts."""
    try:
        late_policy = normalize_late_policy(a.late_policy)
    except ValueError as exc:
        raise CourseError(f"{a.folder / 'assignment.toml'}: {exc}") from exc
    if a.counting not in ("last", "best"):
        raise CourseError(
            f"{a.folder / 'assignment.toml'}: counting must be 'last' or 'best', not {a.counting!r}"
        )
    row = session.scalar(
        select(Assignment).where(Assignment.course_id == course.id, Assignment.slug == a.slug)
    )
    if row is None:
        row = Assignment(
            course_id=course.id,
            slug=a.slug,
            title=a.title,
            due_at=a.due_at,
            late_policy=late_policy,
            counting_policy=a.counting,
            cap_total=a.cap_total,
            cap_per_day=a.cap_per_day,
        )
        session.add(row)
        session.flush()
    row.title = a.title
    row.position = a.position
    row.version = a.version
    row.max_score = a.max_score
    existing = {e.slug: e for e in row.exercises}
    for position, ex in enumerate(a.exercises):
        e = existing.pop(ex.slug, None)
        if e is None:
            e = Exercise(slug=ex.slug, kind=ex.kind, max_score=ex.points)
            row.exercises.append(e)
        e.kind, e.max_score, e.position, e.device = ex.kind, ex.points, position, ex.device
        if ex.rubric is not None:
            session.flush()  # the exercise's id, for its rubric
            sync_rubric(session, e, ex.rubric)
    for stale in existing.values():
        row.exercises.remove(stale)
    return row
