"""The gradebook as CSV: staff only (shared/API.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from api.deps import DB, Member, require_staff
from api.services.gradebook import GradebookError, gradebook_csv

router = APIRouter(prefix="/api/v1")


@router.get("/courses/{course}/gradebook.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
def gradebook(
    db: DB,
    member: Member,
    format: Annotated[str, Query(max_length=16)] = "wide",
    assignment: Annotated[str | None, Query(max_length=64)] = None,
    layout: Annotated[str, Query(max_length=16)] = "default",
) -> Response:
    """One row per enrolled student: `student`, then per assignment its total and per
    exercise its score (late penalties applied). `?format=long`: one row per student x
    exercise with raw score, penalty and score; `?assignment=slug`: that assignment only;
    `?layout=canvas`: Canvas's gradebook import columns."""
    require_staff(member)
    try:
        text = gradebook_csv(db, member.course, format, layout, assignment)
    except GradebookError as exc:
        status = 404 if str(exc).startswith("There is no") else 422
        raise HTTPException(status, str(exc)) from None
    name = member.course.slug + (f"-{assignment}" if assignment else "")
    name += "-canvas" if layout == "canvas" else ("-long" if format == "long" else "")
    return Response(text, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{name}-gradebook.csv"',
        "Cache-Control": "no-store",
    })
