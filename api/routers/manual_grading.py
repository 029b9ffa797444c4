"""Manual exercises (docs/API.md, "Manual exercises"): the grading list, an answer,
the rubric, a grade. The course's TAs and instructors; a student reads their own
answer (and its grade once released)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Response

from api.deps import DB, CurrentUser, Member
from api.errors import errors
from api.schemas_manual import (
    AnswerOut,
    GradingEntry,
    ManualGradeIn,
    ManualGradeOut,
    RubricItemIO,
)
from api.services.manual import answer_view, grading_list, put_grade, replace_rubric, rubric_items
from graders.rubric import MAX_ITEMS

router = APIRouter(prefix="/api/v1")
EXERCISE = "/courses/{course}/assignments/{assignment}/exercises/{exercise}"
Slug = Annotated[str, Path(max_length=64)]


@router.get(EXERCISE + "/grading", response_model=list[GradingEntry], responses=errors(403, 404))
def grading(
    db: DB,
    member: Member,
    assignment: Slug,
    exercise: Slug,
    anonymous: Annotated[bool, Query()] = False,
) -> list[GradingEntry]:
    """Each enrolled student's counted submission, in an order stable for the caller and
    different between graders; `?anonymous=true`: pseudonyms until an answer is graded."""
    return grading_list(db, member, assignment, exercise, anonymous)


@router.get(EXERCISE + "/rubric", response_model=list[RubricItemIO], responses=errors(403, 404))
def get_rubric(db: DB, member: Member, assignment: Slug, exercise: Slug) -> list[RubricItemIO]:
    return rubric_items(db, member, assignment, exercise)


@router.put(
    EXERCISE + "/rubric", response_model=list[RubricItemIO], responses=errors(403, 404, 422)
)
def set_rubric(
    db: DB,
    member: Member,
    assignment: Slug,
    exercise: Slug,
    response: Response,
    items: Annotated[list[RubricItemIO], Body(max_length=MAX_ITEMS)],
) -> list[RubricItemIO]:
    """Replace the rubric; every answer graded with a changed item is rescored (the
    number rescored is in the `X-Rescored` header)."""
    rubric, rescored = replace_rubric(db, member, assignment, exercise, items)
    response.headers["X-Rescored"] = str(rescored)
    return rubric


@router.get(
    "/submissions/{submission_id}/exercises/{exercise}/answer",
    response_model=AnswerOut,
    responses=errors(404),
)
def answer(
    db: DB,
    user: CurrentUser,
    submission_id: Annotated[str, Path(max_length=64)],
    exercise: Slug,
    anonymous: Annotated[bool, Query()] = False,
) -> AnswerOut:
    """The answer's tagged cells as sanitised HTML, with the rubric and grade so far."""
    return answer_view(db, user, submission_id, exercise, anonymous)


@router.put(
    "/submissions/{submission_id}/exercises/{exercise}/manual",
    response_model=ManualGradeOut,
    responses=errors(403, 404, 422),
)
def grade(
    db: DB,
    user: CurrentUser,
    submission_id: Annotated[str, Path(max_length=64)],
    exercise: Slug,
    body: ManualGradeIn,
) -> ManualGradeOut:
    """Grade the answer: score = clamp(sum of the applied items + adjustment, floor,
    ceiling)."""
    return put_grade(db, user, submission_id, exercise, body)
