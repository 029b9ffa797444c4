"""Grades follow a student's answer from one submission to the next.

The rule (docs/authoring.md, "Manual exercises"): manual grades belong to a submission,
so a regrade of its automatic tests never touches them. When the submission that counts
for a student (the counting policy's pick among their graded notebooks) has no grade for
a manual exercise but an earlier submission of theirs has one, the latest such grade is
copied to it: as is when the tagged cells are identical (same hash of sources and
outputs), marked `needs_review` when they differ (the grade still counts until a
grader re-grades the answer). Copies are made when the counted submission is first
looked at (grading list, answer, gradebook, the submission's page), and kept.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.services.gradebook import counted_code_submissions
from api.services.manual.answers import answer_of
from core.blobs import BlobNotFound, get_blob_store
from core.models import Assignment, Exercise, Submission
from core.rubric_models import ManualGrade
from graders.intake_limits import IntakeError


def manual_exercises(assignment: Assignment) -> list[Exercise]:
    return [e for e in assignment.exercises if e.kind == "manual"]


def answer_hash(submission: Submission, slug: str) -> str:
    """The hash of the submission's cells tagged `slug`; "" if the file cannot be read."""
    try:
        data = get_blob_store().read(submission.sha256)
        return answer_of(data, submission.file_kind, slug).sha256
    except (IntakeError, BlobNotFound):
        return ""


def carry_over(
    db: Session,
    assignment: Assignment,
    users: Select[Any] | None = None,
    user_id: int | None = None,
) -> int:
    """Copy grades to counted submissions that lack them; returns how many were copied
    (and commits them, if any)."""
    exercises = manual_exercises(assignment)
    if not exercises:
        return 0
    counted = counted_code_submissions(db, assignment, users, user_id)
    if not counted:
        return 0
    by_id = {e.id: e for e in exercises}
    graded = set(
        db.execute(
            select(ManualGrade.submission_id, ManualGrade.exercise_id).where(
                ManualGrade.submission_id.in_(list(counted.values())),
                ManualGrade.exercise_id.in_(list(by_id)),
            )
        ).tuples()
    )
    missing = {(u, e) for u, s in counted.items() for e in by_id if (s, e) not in graded}
    if not missing:
        return 0
    # The latest grade of each (student, exercise) on any of their submissions.
    earlier: dict[tuple[int, int], ManualGrade] = {}
    for grade, owner in db.execute(
        select(ManualGrade, Submission.user_id)
        .join(Submission, Submission.id == ManualGrade.submission_id)
        .where(
            Submission.assignment_id == assignment.id,
            Submission.user_id.in_({u for u, _ in missing}),
            ManualGrade.exercise_id.in_(list(by_id)),
        )
        .order_by(ManualGrade.graded_at.desc(), ManualGrade.id.desc())
    ).tuples():
        earlier.setdefault((owner, grade.exercise_id), grade)
    copied = 0
    for (owner, exercise_id), source in earlier.items():
        if (owner, exercise_id) not in missing:
            continue
        target = db.get(Submission, counted[owner])
        assert target is not None
        digest = answer_hash(target, by_id[exercise_id].slug)
        copy = ManualGrade(
            submission_id=target.id,
            exercise_id=exercise_id,
            applied=list(source.applied),
            adjustment=source.adjustment,
            comment=source.comment,
            score=source.score,
            answer_sha256=digest,
            grader_id=source.grader_id,
            graded_at=source.graded_at,
            needs_review=source.needs_review or not digest or digest != source.answer_sha256,
            carried_from=source.submission_id,
        )
        try:
            with db.begin_nested():
                db.add(copy)
            copied += 1
        except IntegrityError:  # another request copied it first
            continue
    if copied:
        db.commit()
    return copied
