"""The gradebook as CSV: staff only (docs/API.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import DB, Member
from api.errors import errors
from api.services.access import require_staff
from api.services.gradebook import gradebook_download

router = APIRouter(prefix="/api/v1")


def csv_response(text: str, filename: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/courses/{course}/gradebook.csv",
    response_class=Response,
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "The gradebook.",
        },
        **errors(403, 404),
    },
)
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
    return csv_response(*gradebook_download(db, member.course, format, layout, assignment))
