"""Users, enrollments and API tokens. Tokens are random; only their sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import ApiToken, Course, Enrollment, User, utcnow

ROLES = ("student", "ta", "instructor")
STAFF_ROLES = ("ta", "instructor")


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message says why."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, user: User) -> str:
    token = "ag_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token)))
    return token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.scalar(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token),
                               ApiToken.revoked_at.is_(None))
    )
    return row.user if row else None


def revoke_tokens(session: Session, user: User) -> int:
    count = 0
    for row in session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ):
        row.revoked_at = utcnow()
        count += 1
    return count


def get_or_create_user(session: Session, name: str, full_name: str = "",
                       email: str = "") -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name, full_name=full_name or name, email=email)
        session.add(user)
        session.flush()
    else:
        if full_name:
            user.full_name = full_name
        if email:
            user.email = email
    return user


def enroll(session: Session, user: User, course: Course, role: str) -> Enrollment:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    enrollment = session.scalar(
        select(Enrollment).where(Enrollment.user_id == user.id,
                                 Enrollment.course_id == course.id)
    )
    if enrollment is None:
        enrollment = Enrollment(user_id=user.id, course_id=course.id, role=role,
                                pseudonym="anon-" + secrets.token_hex(3))
        session.add(enrollment)
    else:
        enrollment.role = role
    session.flush()
    return enrollment


def add_user(session: Session, name: str, role: str, course_slug: str,
             full_name: str = "", email: str = "") -> str:
    """Create (or update) a user, enroll them, and return a fresh token."""
    course = session.scalar(select(Course).where(Course.slug == course_slug))
    if course is None:
        raise AccountError(f"there is no course {course_slug!r}")
    if not name or len(name) > 200:
        raise AccountError("a user name must be 1 to 200 characters")
    user = get_or_create_user(session, name, full_name, email)
    enroll(session, user, course, role)
    return issue_token(session, user)
