"""Running a course: assignment settings (deadline, late and counting policy, caps,
release), per-student extensions, the roster and tokens, and the audit log.

Every change is written to the audit log (core.audit.record) in its own transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas import (
    AssignmentPatch,
    AssignmentSettings,
    AuditOut,
    ExerciseOut,
    ExtensionIn,
    ExtensionOut,
    MemberOut,
    RosterOut,
    RosterRowOut,
    TokenOut,
)
from api.services.access import (
    Membership,
    get_assignment,
    is_released,
    require_instructor,
    require_staff,
)
from api.services.regrades import regrade_batch
from core import policy
from core.accounts import (
    AccountError,
    foreign_courses,
    import_roster,
    issue_token,
    parse_roster,
    revoke_tokens,
)
from core.audit import record
from core.errors import Forbidden, NotFound, Unreadable
from core.models import Assignment, AuditEvent, Enrollment, Extension, User, utcnow


def audit(
    db: Session, member: Membership, action: str, target: str, details: dict[str, Any]
) -> None:
    record(db, member.user.id, member.course.id, action, target, details)


# -- assignment settings -----------------------------------------------------------


def settings_view(
    db: Session, member: Membership, a: Assignment, batch_id: str | None = None
) -> AssignmentSettings:
    try:
        late_policy = policy.normalize_late_policy(a.late_policy)
    except ValueError:  # written by hand in assignment.toml: shown as it is
        late_policy = dict(a.late_policy or {})
    return AssignmentSettings(
        slug=a.slug,
        title=a.title,
        due_at=a.due_at,
        your_due_at=policy.effective_due(db, a, member.user.id),
        late_policy=late_policy,
        counting_policy=a.counting_policy or "last",
        cap_total=a.cap_total,
        cap_per_day=a.cap_per_day,
        released=is_released(a),
        released_at=a.released_at,
        max_score=a.max_score,
        exercises=[
            ExerciseOut(slug=e.slug, max_score=e.max_score, kind=e.kind, device=e.device)
            for e in a.exercises
        ],
        batch_id=batch_id,
    )


def _settings(a: Assignment) -> dict[str, Any]:
    return {
        "due_at": a.due_at,
        "late_policy": a.late_policy,
        "counting_policy": a.counting_policy,
        "cap_total": a.cap_total,
        "cap_per_day": a.cap_per_day,
        "released_at": a.released_at,
    }


def patch_assignment(
    db: Session, member: Membership, assignment: str, body: AssignmentPatch
) -> AssignmentSettings:
    require_staff(member)
    target = get_assignment(db, member.course, assignment)
    sent = body.model_fields_set - {"regrade"}
    for name in ("counting_policy", "released"):
        if name in sent and getattr(body, name) is None:
            raise Unreadable(f"{name} cannot be null.")
    before = _settings(target)
    if "due_at" in sent:
        target.due_at = body.due_at
    if "late_policy" in sent:
        try:
            target.late_policy = policy.normalize_late_policy(
                body.late_policy.model_dump() if body.late_policy else None
            )
        except ValueError as exc:
            raise Unreadable(str(exc)) from None
    if "counting_policy" in sent:
        target.counting_policy = body.counting_policy  # type: ignore[assignment]
    if "cap_total" in sent:
        target.cap_total = body.cap_total
    if "cap_per_day" in sent:
        target.cap_per_day = body.cap_per_day
    if "released" in sent:
        if not body.released:
            target.released_at = None
        elif not is_released(target):
            target.released_at = utcnow()
    after = _settings(target)
    changed = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    audit(
        db,
        member,
        "update_assignment",
        f"assignment:{target.slug}",
        {"changed": changed, "regrade": body.regrade},
    )
    db.commit()
    batch_id = regrade_batch(db, member, target, None, "settings changed") if body.regrade else None
    return settings_view(db, member, target, batch_id)


# -- extensions --------------------------------------------------------------------


def enrolled_user(db: Session, member: Membership, name: str) -> tuple[User, Enrollment]:
    row = (
        db.execute(
            select(User, Enrollment)
            .join(Enrollment, Enrollment.user_id == User.id)
            .where(User.name == name, Enrollment.course_id == member.course.id)
        ).first()
        if len(name) <= 200
        else None
    )
    if row is None:
        raise NotFound(f"There is no user {name[:200]!r} in course {member.course.slug!r}.")
    return row[0], row[1]


def list_extensions(db: Session, member: Membership, assignment: str) -> list[ExtensionOut]:
    require_staff(member)
    target = get_assignment(db, member.course, assignment)
    rows = db.execute(
        select(User.name, Extension.due_at)
        .join(Extension, Extension.user_id == User.id)
        .where(Extension.assignment_id == target.id)
        .order_by(User.name)
    ).all()
    return [
        ExtensionOut(
            student=name,
            assignment=target.slug,
            due_at=due,
            assignment_due_at=target.due_at,
            extended=True,
        )
        for name, due in rows
    ]


def put_extension(
    db: Session, member: Membership, assignment: str, student: str, body: ExtensionIn
) -> ExtensionOut:
    require_staff(member)
    target = get_assignment(db, member.course, assignment)
    user, _ = enrolled_user(db, member, student)
    row = db.scalar(
        select(Extension).where(Extension.assignment_id == target.id, Extension.user_id == user.id)
    )
    previous = row.due_at if row is not None else None
    if row is None:
        row = Extension(assignment_id=target.id, user_id=user.id, due_at=body.due_at)
        db.add(row)
    row.due_at = body.due_at
    audit(
        db,
        member,
        "set_extension",
        f"assignment:{target.slug}/student:{user.name}",
        {"from": previous, "to": body.due_at, "regrade": body.regrade},
    )
    db.commit()
    batch_id = (
        regrade_batch(db, member, target, user.id, "extension changed") if body.regrade else None
    )
    return ExtensionOut(
        student=user.name,
        assignment=target.slug,
        due_at=body.due_at,
        assignment_due_at=target.due_at,
        extended=True,
        batch_id=batch_id,
    )


def delete_extension(
    db: Session, member: Membership, assignment: str, student: str, regrade: bool
) -> ExtensionOut:
    require_staff(member)
    target = get_assignment(db, member.course, assignment)
    user, _ = enrolled_user(db, member, student)
    row = db.scalar(
        select(Extension).where(Extension.assignment_id == target.id, Extension.user_id == user.id)
    )
    if row is None:
        raise NotFound(f"{user.name} has no extension on {target.slug}.")
    audit(
        db,
        member,
        "remove_extension",
        f"assignment:{target.slug}/student:{user.name}",
        {"from": row.due_at, "to": None, "regrade": regrade},
    )
    db.delete(row)
    db.commit()
    batch_id = regrade_batch(db, member, target, user.id, "extension removed") if regrade else None
    return ExtensionOut(
        student=user.name,
        assignment=target.slug,
        due_at=target.due_at,
        assignment_due_at=target.due_at,
        extended=False,
        batch_id=batch_id,
    )


# -- roster and tokens ---------------------------------------------------------------


def import_roster_text(db: Session, member: Membership, data: bytes) -> RosterOut:
    require_instructor(member)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable("The roster is not UTF-8 text; save it as CSV UTF-8.") from None
    try:
        results = import_roster(db, member.course, parse_roster(text), manager=member.user)
    except AccountError as exc:
        db.rollback()
        raise Unreadable(str(exc)) from None
    counts = {
        s: sum(1 for r in results if r.status == s) for s in ("created", "updated", "unchanged")
    }
    audit(
        db,
        member,
        "import_roster",
        f"course:{member.course.slug}",
        {
            **counts,
            "created_users": [r.id for r in results if r.status == "created"],
            "updated_users": [r.id for r in results if r.status == "updated"],
        },
    )
    db.commit()
    return RosterOut(
        course=member.course.slug,
        rows=[RosterRowOut(id=r.id, status=r.status, role=r.role, token=r.token) for r in results],
        **counts,
    )


def list_members(db: Session, member: Membership) -> list[MemberOut]:
    require_staff(member)
    rows = db.execute(
        select(User, Enrollment.role)
        .join(Enrollment, Enrollment.user_id == User.id)
        .where(Enrollment.course_id == member.course.id)
        .order_by(Enrollment.role, User.name)
    ).all()
    return [
        MemberOut(name=u.name, full_name=u.full_name, email=u.email, role=role) for u, role in rows
    ]


def _manageable(db: Session, member: Membership, name: str) -> User:
    require_instructor(member)
    user, _ = enrolled_user(db, member, name)
    others = foreign_courses(db, user, member.user)
    if others:
        raise Forbidden(
            f"{user.name} is also enrolled in {', '.join(others)}, which you do not "
            "teach; their tokens are managed there or on the server "
            "(autograder user add/revoke)."
        )
    return user


def new_token(db: Session, member: Membership, name: str, revoke_existing: bool) -> TokenOut:
    user = _manageable(db, member, name)
    revoked = revoke_tokens(db, user) if revoke_existing else 0
    token = issue_token(db, user)
    audit(db, member, "issue_token", f"user:{user.name}", {"revoked": revoked})
    db.commit()
    return TokenOut(user=user.name, token=token, revoked=revoked)


def revoke_all(db: Session, member: Membership, name: str) -> TokenOut:
    user = _manageable(db, member, name)
    revoked = revoke_tokens(db, user)
    audit(db, member, "revoke_tokens", f"user:{user.name}", {"revoked": revoked})
    db.commit()
    return TokenOut(user=user.name, revoked=revoked)


def audit_log(
    db: Session, member: Membership, limit: int, before: int | None, action: str | None
) -> list[AuditOut]:
    require_instructor(member)
    query = (
        select(AuditEvent, User.name)
        .outerjoin(User, User.id == AuditEvent.actor_id)
        .where(AuditEvent.course_id == member.course.id)
    )
    if before is not None:
        query = query.where(AuditEvent.id < before)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    rows = db.execute(query.order_by(AuditEvent.id.desc()).limit(limit)).all()
    return [
        AuditOut(
            id=e.id, at=e.at, actor=name, action=e.action, target=e.target, details=e.details or {}
        )
        for e, name in rows
    ]
