"""Course content: the assignments and their exercises."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from api.deps import DB, Member
from api.errors import errors
from api.schemas import AssignmentOut, ExerciseOut
from api.services.access import is_released
from core import policy
from core.models import Assignment, utcnow

router = APIRouter(prefix="/api/v1")


@router.get(
    "/courses/{course}/assignments", response_model=list[AssignmentOut], responses=errors(403, 404)
)
def list_assignments(db: DB, member: Member) -> list[AssignmentOut]:
    rows = db.scalars(
        select(Assignment)
        .where(Assignment.course_id == member.course.id)
        .order_by(Assignment.position, Assignment.slug)
    ).all()
    now = utcnow()
    return [
        AssignmentOut(
            slug=a.slug,
            title=a.title,
            due_at=a.due_at,
            max_score=a.max_score,
            exercises=[
                ExerciseOut(slug=e.slug, max_score=e.max_score, kind=e.kind, device=e.device)
                for e in a.exercises
            ],
            your_due_at=policy.effective_due(db, a, member.user.id),
            released=is_released(a, now),
        )
        for a in rows
    ]
