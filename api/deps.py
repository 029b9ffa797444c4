"""Request dependencies: the database session, the caller, and their role in a course."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Path
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts import STAFF_ROLES, user_for_token
from core.db import get_sessionmaker
from core.models import Assignment, Course, Enrollment, User


def db_session() -> Iterator[Session]:
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.close()


DB = Annotated[Session, Depends(db_session)]


def current_user(
    db: DB, authorization: Annotated[str | None, Header()] = None
) -> User:
    if not authorization:
        raise HTTPException(
            401, "Missing Authorization header: send 'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "The Authorization header must be 'Bearer <token>'.",
                            headers={"WWW-Authenticate": "Bearer"})
    user = user_for_token(db, token.strip())
    if user is None:
        raise HTTPException(401, "The token is not valid (unknown or revoked).",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


CurrentUser = Annotated[User, Depends(current_user)]


@dataclass
class Membership:
    user: User
    course: Course
    role: str

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


def get_course(db: Session, slug: str) -> Course:
    course = db.scalar(select(Course).where(Course.slug == slug))
    if course is None:
        raise HTTPException(404, f"There is no course {slug!r}.")
    return course


def membership(db: Session, user: User, course: Course) -> Membership:
    enrollment = db.scalar(
        select(Enrollment).where(Enrollment.user_id == user.id,
                                 Enrollment.course_id == course.id)
    )
    if enrollment is None:
        raise HTTPException(403, f"You are not enrolled in the course {course.slug!r}.")
    return Membership(user, course, enrollment.role)


def course_member(
    db: DB, user: CurrentUser, course: Annotated[str, Path()]
) -> Membership:
    return membership(db, user, get_course(db, course))


Member = Annotated[Membership, Depends(course_member)]


def require_staff(member: Membership) -> None:
    if not member.is_staff:
        raise HTTPException(403, "Only the course's TAs and instructors may do this.")


def require_instructor(member: Membership) -> None:
    if member.role != "instructor":
        raise HTTPException(403, "Only the course's instructors may do this.")


def get_assignment(db: Session, course: Course, slug: str) -> Assignment:
    assignment = db.scalar(
        select(Assignment).where(Assignment.course_id == course.id, Assignment.slug == slug)
    )
    if assignment is None:
        raise HTTPException(404, f"There is no assignment {slug!r} in course {course.slug!r}.")
    return assignment
