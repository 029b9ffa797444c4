"""Running a course: assignment settings (deadline, late and counting policy, caps,
release), per-student extensions, the roster and tokens, and the audit log.

Every change here is written to the audit log (AuditEvent) in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from api.deps import DB, Member, Membership, get_assignment, require_instructor, require_staff
from api.schemas import ExerciseOut
from core import policy
from core.accounts import (
    AccountError,
    foreign_courses,
    import_roster,
    issue_token,
    parse_roster,
    revoke_tokens,
)
from core.jobs import dispatch
from core.models import Assignment, AuditEvent, Enrollment, Extension, User, utcnow

router = APIRouter(prefix="/api/v1")
MAX_ROSTER_BYTES = 2 * 1024 * 1024


def audit(db: Session, member: Membership, action: str, target: str,
          details: dict[str, Any]) -> None:
    db.add(AuditEvent(actor_id=member.user.id, course_id=member.course.id, action=action,
                      target=target, details=_jsonable(details)))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("must include a timezone, e.g. 2027-01-15T23:59:00+00:00 or ...Z")
    return value


# -- assignment settings -----------------------------------------------------------

class LatePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["none", "zero", "percent_per_day"]
    percent_per_day: float | None = Field(default=None, ge=0, le=100)
    max_percent: float | None = Field(default=None, ge=0, le=100)


class AssignmentPatch(BaseModel):
    """Only the fields sent change; null removes a deadline or a cap."""

    model_config = ConfigDict(extra="forbid")
    due_at: datetime | None = None
    late_policy: LatePolicy | None = None
    counting_policy: Literal["last", "best"] | None = None
    cap_total: int | None = Field(default=None, ge=0, le=1_000_000)
    cap_per_day: int | None = Field(default=None, ge=0, le=1_000_000)
    released: bool | None = None
    #: Regrade every submission afterwards, so stored penalties follow a new deadline.
    regrade: bool = False

    _tz = field_validator("due_at")(_aware)


class AssignmentSettings(BaseModel):
    slug: str
    title: str
    due_at: datetime | None
    your_due_at: datetime | None
    late_policy: dict[str, Any]
    counting_policy: str
    cap_total: int | None
    cap_per_day: int | None
    released: bool
    released_at: datetime | None
    max_score: float
    exercises: list[ExerciseOut]
    #: The regrade batch started by this change (regrade: true).
    batch_id: str | None = None


def settings_view(db: Session, member: Membership, a: Assignment,
                  batch_id: str | None = None) -> AssignmentSettings:
    try:
        late_policy = policy.normalize_late_policy(a.late_policy)
    except ValueError:  # written by hand in assignment.toml: shown as it is
        late_policy = dict(a.late_policy or {})
    return AssignmentSettings(
        slug=a.slug, title=a.title, due_at=a.due_at,
        your_due_at=policy.effective_due(db, a, member.user.id),
        late_policy=late_policy,
        counting_policy=a.counting_policy or "last", cap_total=a.cap_total,
        cap_per_day=a.cap_per_day,
        released=a.released_at is not None and a.released_at <= utcnow(),
        released_at=a.released_at, max_score=a.max_score,
        exercises=[ExerciseOut(slug=e.slug, max_score=e.max_score, kind=e.kind,
                               device=e.device) for e in a.exercises],
        batch_id=batch_id,
    )


def _settings(a: Assignment) -> dict[str, Any]:
    return {"due_at": a.due_at, "late_policy": a.late_policy,
            "counting_policy": a.counting_policy, "cap_total": a.cap_total,
            "cap_per_day": a.cap_per_day, "released_at": a.released_at}


@router.get("/courses/{course}/assignments/{assignment}", response_model=AssignmentSettings)
def get_assignment_settings(db: DB, member: Member, assignment: str) -> AssignmentSettings:
    """An assignment's rules (deadline, your own deadline, late policy, caps): any member."""
    return settings_view(db, member, get_assignment(db, member.course, assignment))


@router.patch("/courses/{course}/assignments/{assignment}", response_model=AssignmentSettings)
def patch_assignment(db: DB, member: Member, assignment: str,
                     body: AssignmentPatch) -> AssignmentSettings:
    require_staff(member)
    target = get_assignment(db, member.course, assignment)
    sent = body.model_fields_set - {"regrade"}
    for name in ("counting_policy", "released"):
        if name in sent and getattr(body, name) is None:
            raise HTTPException(422, f"{name} cannot be null.")
    before = _settings(target)
    if "due_at" in sent:
        target.due_at = body.due_at
    if "late_policy" in sent:
        target.late_policy = policy.normalize_late_policy(
            body.late_policy.model_dump() if body.late_policy else None)
    if "counting_policy" in sent:
        target.counting_policy = body.counting_policy  # type: ignore[assignment]
    if "cap_total" in sent:
        target.cap_total = body.cap_total
    if "cap_per_day" in sent:
        target.cap_per_day = body.cap_per_day
    if "released" in sent:
        if not body.released:
            target.released_at = None
        elif target.released_at is None or target.released_at > utcnow():
            target.released_at = utcnow()
    after = _settings(target)
    changed = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    audit(db, member, "update_assignment", f"assignment:{target.slug}",
          {"changed": changed, "regrade": body.regrade})
    db.commit()
    batch_id = _regrade(db, member, target, None, "settings changed") if body.regrade else None
    return settings_view(db, member, target, batch_id)


def _regrade(db: Session, member: Membership, target: Assignment, user_id: int | None,
             reason: str) -> str:
    from api.routers.regrades import start_batch

    batch, jobs = start_batch(db, member, target, reason=reason, user_id=user_id)
    dispatch(db, jobs)
    return batch.id


# -- extensions --------------------------------------------------------------------

class ExtensionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    due_at: datetime
    #: Regrade the student's submissions, so their stored penalties follow the extension.
    regrade: bool = False

    _tz = field_validator("due_at")(_aware)


class ExtensionOut(BaseModel):
    student: str
    assignment: str
    due_at: datetime | None
    #: The assignment's own deadline, for comparison.
    assignment_due_at: datetime | None
    extended: bool
    batch_id: str | None = None


def _enrolled_user(db: Session, member: Membership, name: str) -> tuple[User, Enrollment]:
    row = db.execute(
        select(User, Enrollment).join(Enrollment, Enrollment.user_id == User.id)
        .where(User.name == name, Enrollment.course_id == member.course.id)
    ).first()
    if row is None:
        raise HTTPException(404, f"There is no user {name!r} in course {member.course.slug!r}.")
    return row[0], row[1]


@router.get("/courses/{course}/assignments/{assignment}/extensions",
            response_model=list[ExtensionOut])
def list_extensions(db: DB, member: Member, assignment: str) -> list[ExtensionOut]:
    require_staff(member)
    target = get_assignment(db, member.course, assignment)
    rows = db.execute(
        select(User.name, Extension.due_at).join(Extension, Extension.user_id == User.id)
        .where(Extension.assignment_id == target.id).order_by(User.name)
    ).all()
    return [ExtensionOut(student=name, assignment=target.slug, due_at=due,
                         assignment_due_at=target.due_at, extended=True)
            for name, due in rows]


@router.put("/courses/{course}/assignments/{assignment}/extensions/{student}",
            response_model=ExtensionOut)
def put_extension(db: DB, member: Member, assignment: str, student: str,
                  body: ExtensionIn) -> ExtensionOut:
    require_staff(member)
    target = get_assignment(db, member.course, assignment)
    user, _ = _enrolled_user(db, member, student)
    row = db.scalar(select(Extension).where(Extension.assignment_id == target.id,
                                            Extension.user_id == user.id))
    previous = row.due_at if row is not None else None
    if row is None:
        row = Extension(assignment_id=target.id, user_id=user.id, due_at=body.due_at)
        db.add(row)
    row.due_at = body.due_at
    audit(db, member, "set_extension", f"assignment:{target.slug}/student:{user.name}",
          {"from": previous, "to": body.due_at, "regrade": body.regrade})
    db.commit()
    batch_id = (_regrade(db, member, target, user.id, "extension changed")
                if body.regrade else None)
    return ExtensionOut(student=user.name, assignment=target.slug, due_at=body.due_at,
                        assignment_due_at=target.due_at, extended=True, batch_id=batch_id)


@router.delete("/courses/{course}/assignments/{assignment}/extensions/{student}",
               response_model=ExtensionOut)
def delete_extension(db: DB, member: Member, assignment: str, student: str,
                     regrade: bool = False) -> ExtensionOut:
    require_staff(member)
    target = get_assignment(db, member.course, assignment)
    user, _ = _enrolled_user(db, member, student)
    row = db.scalar(select(Extension).where(Extension.assignment_id == target.id,
                                            Extension.user_id == user.id))
    if row is None:
        raise HTTPException(404, f"{user.name} has no extension on {target.slug}.")
    audit(db, member, "remove_extension", f"assignment:{target.slug}/student:{user.name}",
          {"from": row.due_at, "to": None, "regrade": regrade})
    db.delete(row)
    db.commit()
    batch_id = _regrade(db, member, target, user.id, "extension removed") if regrade else None
    return ExtensionOut(student=user.name, assignment=target.slug, due_at=target.due_at,
                        assignment_due_at=target.due_at, extended=False, batch_id=batch_id)


# -- roster and tokens ---------------------------------------------------------------

class RosterRowOut(BaseModel):
    id: str
    status: str
    role: str
    #: Only for users created by this import, shown this once.
    token: str | None = None


class RosterOut(BaseModel):
    course: str
    created: int
    updated: int
    unchanged: int
    rows: list[RosterRowOut]


@router.post("/courses/{course}/roster", response_model=RosterOut)
async def upload_roster(request: Request, db: DB, member: Member) -> RosterOut:
    """Enroll a roster CSV (columns id, name, email) as students; instructors only."""
    from starlette.concurrency import run_in_threadpool

    require_instructor(member)
    try:
        form = await request.form(max_files=1, max_fields=5, max_part_size=MAX_ROSTER_BYTES)
    except Exception as exc:
        raise HTTPException(422, f"The request body is not a valid multipart form: {exc}") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "Send the roster as a multipart form field named 'file' "
                                     "(curl -F file=@roster.csv ...).")
        data = await upload.read(MAX_ROSTER_BYTES + 1)
    finally:
        await form.close()
    if len(data) > MAX_ROSTER_BYTES:
        raise HTTPException(413, f"The roster is too large: the limit is "
                                 f"{MAX_ROSTER_BYTES // 2**20} MB.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(422, "The roster is not UTF-8 text; save it as CSV UTF-8.") from None
    return await run_in_threadpool(_import, db, member, text)


def _import(db: Session, member: Membership, text: str) -> RosterOut:
    try:
        results = import_roster(db, member.course, parse_roster(text), manager=member.user)
    except AccountError as exc:
        db.rollback()
        raise HTTPException(422, str(exc)) from None
    counts = {s: sum(1 for r in results if r.status == s)
              for s in ("created", "updated", "unchanged")}
    audit(db, member, "import_roster", f"course:{member.course.slug}",
          {**counts, "created_users": [r.id for r in results if r.status == "created"],
           "updated_users": [r.id for r in results if r.status == "updated"]})
    db.commit()
    return RosterOut(course=member.course.slug, rows=[
        RosterRowOut(id=r.id, status=r.status, role=r.role, token=r.token) for r in results
    ], **counts)


class MemberOut(BaseModel):
    name: str
    full_name: str
    email: str
    role: str


@router.get("/courses/{course}/users", response_model=list[MemberOut])
def list_members(db: DB, member: Member) -> list[MemberOut]:
    """Everyone enrolled in the course and their role; staff only."""
    require_staff(member)
    rows = db.execute(
        select(User, Enrollment.role).join(Enrollment, Enrollment.user_id == User.id)
        .where(Enrollment.course_id == member.course.id).order_by(Enrollment.role, User.name)
    ).all()
    return [MemberOut(name=u.name, full_name=u.full_name, email=u.email, role=role)
            for u, role in rows]


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Revoke the user's other tokens first (a lost or leaked token).
    revoke_existing: bool = False


class TokenOut(BaseModel):
    user: str
    token: str | None = None
    revoked: int = 0


def _manageable(db: Session, member: Membership, name: str) -> User:
    require_instructor(member)
    user, _ = _enrolled_user(db, member, name)
    others = foreign_courses(db, user, member.user)
    if others:
        raise HTTPException(
            403, f"{user.name} is also enrolled in {', '.join(others)}, which you do not "
                 "teach; their tokens are managed there or on the server "
                 "(autograder user add/revoke).")
    return user


@router.post("/courses/{course}/users/{name}/token", response_model=TokenOut)
def post_token(db: DB, member: Member, name: str,
               body: TokenRequest | None = None) -> TokenOut:
    """A new token for an enrolled user, shown once; instructors only."""
    body = body or TokenRequest()
    user = _manageable(db, member, name)
    revoked = revoke_tokens(db, user) if body.revoke_existing else 0
    token = issue_token(db, user)
    audit(db, member, "issue_token", f"user:{user.name}", {"revoked": revoked})
    db.commit()
    return TokenOut(user=user.name, token=token, revoked=revoked)


@router.delete("/courses/{course}/users/{name}/token", response_model=TokenOut)
def delete_token(db: DB, member: Member, name: str) -> TokenOut:
    """Revoke every token of an enrolled user; instructors only."""
    user = _manageable(db, member, name)
    revoked = revoke_tokens(db, user)
    audit(db, member, "revoke_tokens", f"user:{user.name}", {"revoked": revoked})
    db.commit()
    return TokenOut(user=user.name, revoked=revoked)


# -- audit log ------------------------------------------------------------------------

class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str | None
    action: str
    target: str
    details: dict[str, Any]


@router.get("/courses/{course}/audit", response_model=list[AuditOut])
def audit_log(db: DB, member: Member,
              limit: Annotated[int, Query(ge=1, le=1000)] = 200,
              before: Annotated[int | None, Query(ge=1)] = None,
              action: Annotated[str | None, Query(max_length=64)] = None) -> list[AuditOut]:
    """Staff actions in the course, newest first (page with ?before=<id>); instructors."""
    require_instructor(member)
    query = (select(AuditEvent, User.name).outerjoin(User, User.id == AuditEvent.actor_id)
             .where(AuditEvent.course_id == member.course.id))
    if before is not None:
        query = query.where(AuditEvent.id < before)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    rows = db.execute(query.order_by(AuditEvent.id.desc()).limit(limit)).all()
    return [AuditOut(id=e.id, at=e.at, actor=name, action=e.action, target=e.target,
                     details=e.details or {}) for e, name in rows]
