"""Bodies of the manual grading API (docs/API.md, "Manual exercises")."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from graders.rubric import MAX_DESCRIPTION, MAX_ITEMS, MAX_POINTS

MAX_COMMENT = 10_000


def _finite(value: float) -> float:
    if not math.isfinite(value) or abs(value) > MAX_POINTS:
        raise ValueError(f"must be a finite number between -{MAX_POINTS:g} and {MAX_POINTS:g}")
    return value


class RubricItemIO(BaseModel):
    """One rubric item: its id, its points (negative for a deduction), what it rewards."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64)
    points: float
    description: str = Field(default="", max_length=MAX_DESCRIPTION)

    _finite_points = field_validator("points")(_finite)


class RubricOut(BaseModel):
    """A rubric with its bounds (the PUT body is the list of items alone)."""

    items: list[RubricItemIO]
    floor: float
    ceiling: float
    max_score: float


class GradingEntry(BaseModel):
    submission_id: str
    #: The student's name, or their pseudonym in anonymous mode until the answer is graded.
    student: str
    graded: bool
    score: float | None
    #: A grade carried over from an earlier submission whose tagged cells differ.
    needs_review: bool = False


class ManualGradeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rubric: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=MAX_ITEMS
    )
    adjustment: float = 0.0
    comment: str = Field(default="", max_length=MAX_COMMENT)

    _finite_adjustment = field_validator("adjustment")(_finite)


class AppliedItem(BaseModel):
    id: str
    points: float
    description: str


class ManualGradeOut(BaseModel):
    submission_id: str
    exercise: str
    score: float
    max_score: float
    rubric: list[str]
    #: The applied items with their current points and descriptions.
    applied: list[AppliedItem]
    adjustment: float
    comment: str
    grader: str | None
    graded_at: datetime
    needs_review: bool = False
    #: The submission this grade was carried over from, if it was.
    carried_from: str | None = None


class ManualFeedbackOut(BaseModel):
    """A manual exercise's grade in a submission's results (its `tests` list the applied
    rubric items, one entry each: outcome "applied", score the item's points)."""

    graded: bool
    adjustment: float | None = None
    comment: str | None = None
    needs_review: bool = False
    #: Why the score is not shown (not graded yet; hidden until the release).
    note: str | None = None


class AnswerOut(BaseModel):
    submission_id: str
    course: str
    assignment: str
    exercise: str
    #: The student (a pseudonym with ?anonymous=true until graded; staff only).
    student: str | None
    #: The tagged cells as sanitised HTML.
    html: str
    cells: int
    cells_left_out: int = 0
    max_score: float
    #: The rubric (staff; students once the feedback is released).
    rubric: list[RubricItemIO]
    floor: float
    ceiling: float
    #: The grade so far (null when ungraded, or for a student before the release).
    grade: ManualGradeOut | None
    note: str | None = None
