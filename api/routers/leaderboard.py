"""A leaderboard per model exercise (the ranking rules: api/services/leaderboard.py)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import DB, Member
from api.errors import errors
from api.schemas import Leaderboard
from api.services import leaderboard as boards

router = APIRouter(prefix="/api/v1")


@router.get(
    "/courses/{course}/assignments/{assignment}/exercises/{exercise}/leaderboard",
    response_model=Leaderboard,
    responses=errors(403, 404),
)
def leaderboard(db: DB, member: Member, assignment: str, exercise: str) -> Leaderboard:
    """Pseudonymous, best score per student; public/private split until the deadline."""
    return boards.leaderboard(db, member, assignment, exercise)
