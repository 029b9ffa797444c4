"""Running a course: assignment settings, extensions, the roster and tokens, and the
audit log (the work is in api/services/staff.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from api.deps import DB, Member
from api.errors import errors
from api.multipart import receive_file, upload_body
from api.schemas import (
    AssignmentPatch,
    AssignmentSettings,
    AuditOut,
    ExtensionIn,
    ExtensionOut,
    MemberOut,
    RosterOut,
    TokenOut,
    TokenRequest,
)
from api.services import staff
from api.services.access import get_assignment, require_instructor

router = APIRouter(prefix="/api/v1")
MAX_ROSTER_BYTES = 2 * 1024 * 1024
COURSE = "/courses/{course}"
ASSIGNMENT = COURSE + "/assignments/{assignment}"


@router.get(ASSIGNMENT, response_model=AssignmentSettings, responses=errors(403, 404))
def get_assignment_settings(db: DB, member: Member, assignment: str) -> AssignmentSettings:
    """An assignment's rules (deadline, your own deadline, late policy, caps): any member."""
    return staff.settings_view(db, member, get_assignment(db, member.course, assignment))


@router.patch(ASSIGNMENT, response_model=AssignmentSettings, responses=errors(403, 404))
def patch_assignment(
    db: DB, member: Member, assignment: str, body: AssignmentPatch
) -> AssignmentSettings:
    """Change an assignment's rules (staff); `regrade: true` regrades it afterwards."""
    return staff.patch_assignment(db, member, assignment, body)


@router.get(
    ASSIGNMENT + "/extensions", response_model=list[ExtensionOut], responses=errors(403, 404)
)
def list_extensions(db: DB, member: Member, assignment: str) -> list[ExtensionOut]:
    return staff.list_extensions(db, member, assignment)


@router.put(
    ASSIGNMENT + "/extensions/{student}", response_model=ExtensionOut, responses=errors(403, 404)
)
def put_extension(
    db: DB, member: Member, assignment: str, student: str, body: ExtensionIn
) -> ExtensionOut:
    return staff.put_extension(db, member, assignment, student, body)


@router.delete(
    ASSIGNMENT + "/extensions/{student}", response_model=ExtensionOut, responses=errors(403, 404)
)
def delete_extension(
    db: DB, member: Member, assignment: str, student: str, regrade: bool = False
) -> ExtensionOut:
    return staff.delete_extension(db, member, assignment, student, regrade)


@router.post(
    COURSE + "/roster",
    response_model=RosterOut,
    responses=errors(403, 404, 408, 413),
    openapi_extra=upload_body(),
)
async def upload_roster(request: Request, db: DB, member: Member) -> RosterOut:
    """Enroll a roster CSV (columns id, name, email) as students; instructors only."""
    require_instructor(member)
    received = await receive_file(request, MAX_ROSTER_BYTES, example="curl -F file=@roster.csv ...")
    return await run_in_threadpool(staff.import_roster_text, db, member, bytes(received.data))


@router.get(COURSE + "/users", response_model=list[MemberOut], responses=errors(403, 404))
def list_members(db: DB, member: Member) -> list[MemberOut]:
    """Everyone enrolled in the course and their role; staff only."""
    return staff.list_members(db, member)


@router.post(COURSE + "/users/{name}/token", response_model=TokenOut, responses=errors(403, 404))
def post_token(db: DB, member: Member, name: str, body: TokenRequest | None = None) -> TokenOut:
    """A new token for an enrolled user, shown once; instructors only."""
    return staff.new_token(db, member, name, (body or TokenRequest()).revoke_existing)


@router.delete(COURSE + "/users/{name}/token", response_model=TokenOut, responses=errors(403, 404))
def delete_token(db: DB, member: Member, name: str) -> TokenOut:
    """Revoke every token of an enrolled user; instructors only."""
    return staff.revoke_all(db, member, name)


@router.get(COURSE + "/audit", response_model=list[AuditOut], responses=errors(403, 404))
def audit_log(
    db: DB,
    member: Member,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> list[AuditOut]:
    """Staff actions in the course, newest first (page with ?before=<id>); instructors."""
    return staff.audit_log(db, member, limit, before, action)
