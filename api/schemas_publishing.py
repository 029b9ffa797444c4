"""Answers of the publishing endpoints (api/routers/publishing.py)."""

from __future__ import annotations

from pydantic import BaseModel

from api.schemas import ExerciseOut


class PublishedOut(BaseModel):
    """A published assignment version (201)."""

    slug: str
    version: str
    title: str
    max_score: float
    exercises: list[ExerciseOut]
    #: False when these exact files were already a version of the assignment.
    new_version: bool
    #: The version it replaced as the current one (None: a new assignment).
    previous_version: str | None = None
    #: The self-check's rows (what it graded, what it expected, what it got).
    report: list[dict[str, object]]
