"""Who may see and do what, written once for the JSON API and the pages alike.

- who is signed in (a token, from the Bearer header or the pages' cookie);
- their role in a course (`membership`), staff or instructor checks;
- who may see a submission (`visible_submission`): its owner and the course's staff;
  to anyone else it does not exist (404, never 403: an id is not confirmed);
- whether an assignment's results are released (`is_released`), and whether its hidden
  results are revealed to a viewer (`is_revealed`: released, past the deadline, or staff).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts import STAFF_ROLES, user_for_token
from core.errors import Forbidden, NotFound, NotSignedIn
from core.models import Assignment, Course, Enrollment, RegradeBatch, Submission, User, utcnow

MAX_ID = 64


@dataclass
class Membership:
    user: User
    course: Course
    role: str

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def is_instructor(self) -> bool:
        return self.role == "instructor"


def user_for(db: Session, token: str | None, where: str = "header") -> User:
    """The user of a token; NotSignedIn with a sentence otherwise."""
    if not token:
        raise NotSignedIn(
            "Missing Authorization header: send 'Authorization: Bearer <token>'."
            if where == "header"
            else "You are not signed in: sign in at /ui/login first."
        )
    user = user_for_token(db, token) if len(token) <= 512 else None
    if user is None:
        raise NotSignedIn("The token is not valid (unknown or revoked).")
    return user


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotSignedIn("The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def get_course(db: Session, slug: str) -> Course:
    course = db.scalar(select(Course).where(Course.slug == slug)) if len(slug) <= 64 else None
    if course is None:
        raise NotFound(f"There is no course {slug[:64]!r}.")
    return course


def membership(db: Session, user: User, course: Course) -> Membership:
    enrollment = db.scalar(
        select(Enrollment).where(Enrollment.user_id == user.id, Enrollment.course_id == course.id)
    )
    if enrollment is None:
        raise Forbidden(f"You are not enrolled in the course {course.slug!r}.")
    return Membership(user, course, enrollment.role)


def course_member(db: Session, user: User, course: str) -> Membership:
    return membership(db, user, get_course(db, course))


def require_staff(member: Membership, what: str = "do this") -> None:
    if not member.is_staff:
        raise Forbidden(f"Only the course's TAs and instructors may {what}.")


def require_instructor(member: Membership) -> None:
    if not member.is_instructor:
        raise Forbidden("Only the course's instructors may do this.")


def get_assignment(db: Session, course: Course, slug: str) -> Assignment:
    assignment = (
        db.scalar(
            select(Assignment).where(Assignment.course_id == course.id, Assignment.slug == slug)
        )
        if len(slug) <= 64
        else None
    )
    if assignment is None:
        raise NotFound(f"There is no assignment {slug[:64]!r} in course {course.slug!r}.")
    return assignment


def check_exercise(assignment: Assignment, exercise: str | None) -> None:
    if exercise is not None and exercise not in {e.slug for e in assignment.exercises}:
        raise NotFound(f"{assignment.slug} has no exercise {exercise[:64]!r}.")


def visible_submission(
    db: Session, user: User, submission_id: str
) -> tuple[Submission, Membership]:
    """The submission if `user` may see it (its owner, staff of its course)."""
    missing = NotFound(f"There is no submission {submission_id[:MAX_ID]!r}.")
    submission = db.get(Submission, submission_id) if len(submission_id) <= MAX_ID else None
    if submission is None:
        raise missing
    try:
        member = membership(db, user, submission.assignment.course)
    except Forbidden:
        raise missing from None
    if submission.user_id != user.id and not member.is_staff:
        raise missing
    return submission, member


def staff_batch(db: Session, user: User, batch_id: str) -> RegradeBatch:
    """A regrade batch, for the staff of its course (others: 403 in the course, 404 out)."""
    missing = NotFound(f"There is no regrade batch {batch_id[:MAX_ID]!r}.")
    batch = db.get(RegradeBatch, batch_id) if len(batch_id) <= MAX_ID else None
    if batch is None:
        raise missing
    course = db.get(Course, batch.course_id)
    assert course is not None
    try:
        member = membership(db, user, course)
    except Forbidden:
        raise missing from None
    require_staff(member)
    return batch


def is_released(assignment: Assignment, now: datetime | None = None) -> bool:
    """Whether the staff released the assignment's results (hidden tests shown)."""
    now = now or utcnow()
    return assignment.released_at is not None and assignment.released_at <= now


def is_revealed(
    assignment: Assignment, viewer_is_staff: bool, due: datetime | None, now: datetime | None = None
) -> bool:
    """Whether results held back until the deadline are shown: to staff always, to
    students once released or once the deadline `due` has passed."""
    now = now or utcnow()
    return viewer_is_staff or is_released(assignment, now) or (due is not None and now > due)
