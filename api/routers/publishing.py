"""Publishing an assignment folder (instructors), and its starter notebook (anyone
enrolled)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from api.deps import DB, Member, require_instructor
from api.errors import errors
from api.multipart import upload_body
from api.schemas_publishing import PublishedOut
from api.services import publishing

router = APIRouter(prefix="/api/v1")
NOTEBOOK_TYPE = "application/x-ipynb+json"
BUNDLE_BODY = upload_body("bundle", "a .zip or .tar.gz of one assignment folder")


@router.post(
    "/courses/{course}/assignments",
    status_code=201,
    response_model=PublishedOut,
    responses=errors(403, 404, 408, 409, 413, 422, 503),
    openapi_extra=BUNDLE_BODY,
)
async def publish_assignment(request: Request, db: DB, member: Member) -> PublishedOut:
    """Upload an assignment folder (multipart field `bundle`); a worker self-checks it
    and it is published (201), or refused with the self-check's report (422)."""
    require_instructor(member)
    user_id, course = member.user.id, member.course.slug
    # The upload and the self-check take a while: no pooled connection is held meanwhile.
    await run_in_threadpool(db.close)
    return await publishing.publish(request, user_id, course)


@router.get(
    "/courses/{course}/assignments/{assignment}/starter",
    response_class=Response,
    responses={
        200: {
            "content": {NOTEBOOK_TYPE: {"schema": {"type": "object"}}},
            "description": "The current version's starter notebook.",
        },
        **errors(403, 404),
    },
)
def starter(db: DB, member: Member, assignment: str) -> Response:
    data, filename = publishing.starter_notebook(db, member, assignment)
    return Response(
        data,
        media_type=NOTEBOOK_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
