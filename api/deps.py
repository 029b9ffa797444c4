"""Request dependencies of the JSON API: the database session, the caller, and their
role in a course. The rules themselves are in api/services/access.py (shared with the
pages); these only read the request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Path
from sqlalchemy.orm import Session

from api.services.access import (
    Membership,
    bearer_token,
    course_member,
    get_assignment,
    get_course,
    membership,
    require_instructor,
    require_staff,
    user_for,
)
from core.db import get_sessionmaker
from core.models import User

__all__ = [
    "DB",
    "CurrentUser",
    "Member",
    "Membership",
    "get_assignment",
    "get_course",
    "membership",
    "require_instructor",
    "require_staff",
    "db_session",
]


def db_session() -> Iterator[Session]:
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.close()


DB = Annotated[Session, Depends(db_session)]


def current_user(
    db: DB, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> User:
    return user_for(db, bearer_token(authorization))


CurrentUser = Annotated[User, Depends(current_user)]


def _course_member(
    db: DB, user: CurrentUser, course: Annotated[str, Path(max_length=64)]
) -> Membership:
    return course_member(db, user, course)


Member = Annotated[Membership, Depends(_course_member)]
