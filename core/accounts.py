"""Users, enrollments and API tokens. Tokens are random; only their sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

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
        select(ApiToken).where(
            ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
        )
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


def get_or_create_user(session: Session, name: str, full_name: str = "", email: str = "") -> User:
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
        select(Enrollment).where(Enrollment.user_id == user.id, Enrollment.course_id == course.id)
    )
    if enrollment is None:
        enrollment = Enrollment(
            user_id=user.id,
            course_id=course.id,
            role=role,
            pseudonym="anon-" + secrets.token_hex(3),
        )
        session.add(enrollment)
    else:
        enrollment.role = role
    session.flush()
    return enrollment


def add_user(
    session: Session, name: str, role: str, course_slug: str, full_name: str = "", email: str = ""
) -> str:
    """Create (or update) a user, enroll them, and return a fresh token."""
    course = session.scalar(select(Course).where(Course.slug == course_slug))
    if course is None:
        raise AccountError(f"there is no course {course_slug!r}")
    if not name or len(name) > 200:
        raise AccountError("a user name must be 1 to 200 characters")
    user = get_or_create_user(session, name, full_name, email)
    enroll(session, user, course, role)
    return issue_token(session, user)


# -- rosters ------------------------------------------------------------------------

ROSTER_COLUMNS = ("id", "name", "email")
MAX_ROSTER_ROWS = 5000


@dataclass(frozen=True)
class RosterRow:
    line: int
    id: str
    name: str
    email: str


@dataclass
class RosterResult:
    id: str
    status: str  # created | updated | unchanged
    role: str
    token: str | None = None


def valid_user_name(name: str) -> str | None:
    """Why a user name cannot be used (it appears in URLs and CSV files), or None."""
    if not name or len(name) > 200:
        return "must be 1 to 200 characters"
    if name != name.strip():
        return "must not start or end with a space"
    if "/" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "must not contain '/' or control characters"
    return None


def parse_roster(text: str) -> list[RosterRow]:
    """Rows of a roster CSV (columns id, name, email; any order, more columns ignored).

    Raises AccountError naming every bad line: a roster is imported whole or not at all.
    """
    import csv
    import io

    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        raise AccountError(
            "The roster is empty: the first line must be the header id,name,email."
        ) from None
    except csv.Error as exc:
        raise AccountError(f"The roster is not valid CSV: {exc}.") from None
    columns = [h.strip().lower() for h in header]
    missing = [c for c in ROSTER_COLUMNS if c not in columns]
    if missing:
        raise AccountError(
            f"The roster's header lacks the column(s) {', '.join(missing)}: "
            "the first line must name id, name and email."
        )
    where = {c: columns.index(c) for c in ROSTER_COLUMNS}
    rows: list[RosterRow] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    try:
        for record in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            if len(rows) >= MAX_ROSTER_ROWS:
                raise AccountError(f"The roster has more than {MAX_ROSTER_ROWS} rows.")
            cells = {c: (record[i].strip() if i < len(record) else "") for c, i in where.items()}
            why = valid_user_name(cells["id"])
            if why:
                problems.append(f"line {line}: the id {why}")
            elif cells["id"] in seen:
                problems.append(
                    f"line {line}: the id {cells['id']!r} is already on line {seen[cells['id']]}"
                )
            elif len(cells["name"]) > 200 or len(cells["email"]) > 320:
                problems.append(f"line {line}: the name or email is too long")
            elif cells["email"] and "@" not in cells["email"]:
                problems.append(f"line {line}: {cells['email']!r} is not an email address")
            else:
                seen[cells["id"]] = line
                rows.append(RosterRow(line, cells["id"], cells["name"], cells["email"]))
    except csv.Error as exc:
        raise AccountError(f"The roster is not valid CSV: {exc}.") from None
    if problems:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise AccountError(f"Nothing was imported; fix the roster: {shown}{more}.")
    return rows


def foreign_courses(session: Session, user: User, manager: User) -> list[str]:
    """Courses the user is enrolled in where `manager` is not an instructor.

    An instructor may change a user's tokens or details only when this is empty:
    otherwise a token they hold would act in a course they do not run.
    """
    from sqlalchemy.orm import aliased

    mine = aliased(Enrollment)
    managed = select(mine.course_id).where(mine.user_id == manager.id, mine.role == "instructor")
    return list(
        session.scalars(
            select(Course.slug)
            .join(Enrollment, Enrollment.course_id == Course.id)
            .where(Enrollment.user_id == user.id, Enrollment.course_id.not_in(managed))
            .order_by(Course.slug)
        ).all()
    )


def import_roster(
    session: Session, course: Course, rows: list[RosterRow], manager: User | None = None
) -> list[RosterResult]:
    """Create or update the roster's users and enroll them as students.

    New users get a token (returned here, once). Existing users keep their tokens; one
    already on the course's staff keeps that role. Details of a user enrolled in a
    course the manager does not run are left alone (None: the server's own CLI).
    """
    names = [r.id for r in rows]
    existing: dict[str, User] = {}
    for start in range(0, len(names), 500):
        for user in session.scalars(select(User).where(User.name.in_(names[start : start + 500]))):
            existing[user.name] = user
    enrollments = {
        e.user_id: e
        for e in session.scalars(select(Enrollment).where(Enrollment.course_id == course.id))
    }
    created = {
        row.id: User(name=row.id, full_name=row.name or row.id, email=row.email)
        for row in rows
        if row.id not in existing
    }
    session.add_all(created.values())
    session.flush()
    results: list[RosterResult] = []
    for row in rows:
        if row.id in created:
            user = created[row.id]
            session.add(
                Enrollment(
                    user_id=user.id,
                    course_id=course.id,
                    role="student",
                    pseudonym="anon-" + secrets.token_hex(3),
                )
            )
            results.append(RosterResult(row.id, "created", "student", issue_token(session, user)))
            continue
        user = existing[row.id]
        changed = False
        editable = manager is None or not foreign_courses(session, user, manager)
        if editable and row.name and user.full_name != row.name:
            user.full_name, changed = row.name, True
        if editable and row.email and user.email != row.email:
            user.email, changed = row.email, True
        enrollment = enrollments.get(user.id)
        if enrollment is None:
            enrollment = enroll(session, user, course, "student")
            changed = True
        results.append(RosterResult(row.id, "updated" if changed else "unchanged", enrollment.role))
    session.flush()
    return results
