"""Regrades as batches with progress (a whole assignment or one exercise of it)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import DB, CurrentUser, Member
from api.errors import errors
from api.schemas import BatchCreated, BatchOut, RegradeRequest
from api.services import regrades

router = APIRouter(prefix="/api/v1")


@router.post(
    "/courses/{course}/assignments/{assignment}/regrade",
    status_code=202,
    response_model=BatchCreated,
    responses=errors(403, 404),
)
def regrade_assignment(
    db: DB, member: Member, assignment: str, body: RegradeRequest | None = None
) -> BatchCreated:
    body = body or RegradeRequest()
    return regrades.regrade_assignment(
        db, member, assignment, body.exercise, body.reason, body.version
    )


@router.get("/regrades/{batch_id}", response_model=BatchOut, responses=errors(403, 404))
def batch_status(db: DB, user: CurrentUser, batch_id: str) -> BatchOut:
    return regrades.batch_status(db, user, batch_id)
