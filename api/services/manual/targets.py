"""Finding what a manual grading request is about, with the access rules: the course's
staff grade; a student sees only their own answer (and its grade once released)."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services.access import Membership, get_assignment, require_staff, visible_submission
from core.errors import NotFound
from core.models import Assignment, Enrollment, Exercise, Submission, User


def manual_exercise_of(assignment: Assignment, slug: str) -> Exercise:
    """The assignment's manual exercise `slug`; NotFound for an unknown or automatic one."""
    for exercise in assignment.exercises:
        if exercise.slug == slug:
            if exercise.kind != "manual":
                raise NotFound(
                    f"{assignment.slug}/{slug} is graded by tests, not by hand; "
                    "it has no rubric and no manual grade."
                )
            return exercise
    raise NotFound(f"{assignment.slug} has no exercise {slug[:64]!r}.")


def staff_exercise(
    db: Session, member: Membership, assignment: str, exercise: str
) -> tuple[Assignment, Exercise]:
    """The course's manual exercise, for its TAs and instructors (others: Forbidden)."""
    require_staff(member, "grade manual exercises")
    target = get_assignment(db, member.course, assignment)
    return target, manual_exercise_of(target, exercise)


def submission_exercise(
    db: Session, user: User, submission_id: str, exercise: str
) -> tuple[Submission, Membership, Exercise]:
    """A submission the user may see (its owner, the course's staff; anyone else:
    NotFound) and its assignment's manual exercise `exercise`."""
    submission, member = visible_submission(db, user, submission_id)
    return submission, member, manual_exercise_of(submission.assignment, exercise)


def pseudonyms(db: Session, course_id: int, user_ids: set[int]) -> dict[int, str]:
    """Each student's stable pseudonym in the course (the enrollment's, else one derived
    from the ids, so that it never changes between visits)."""
    if not user_ids:
        return {}
    rows = db.execute(
        select(Enrollment.user_id, Enrollment.pseudonym).where(
            Enrollment.course_id == course_id, Enrollment.user_id.in_(user_ids)
        )
    ).tuples()
    found = {int(u): p for u, p in rows if p}
    for user_id in user_ids - set(found):
        digest = hashlib.sha256(f"{course_id}:{user_id}".encode()).hexdigest()
        found[user_id] = "anon-" + digest[:6]
    return found


def order_key(grader_id: int, exercise_id: int, submission_id: str) -> str:
    """The grading order: stable for a grader, different between graders (no answer is
    always graded first, or last, by everyone)."""
    return hashlib.sha256(f"{grader_id}:{exercise_id}:{submission_id}".encode()).hexdigest()
