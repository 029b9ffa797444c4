"""The staff's pages: the gradebook (and its CSV), score statistics, the job queue, and
the regrade buttons with their progress. Each handler calls the services the JSON API
calls; the endpoints that answer JSON answer exactly what the JSON API would."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import DB
from api.routers.gradebook import csv_response
from api.schemas import RegradeRequest
from api.services import regrades
from api.services.access import course_member, require_staff
from api.services.gradebook import build_gradebook, gradebook_download
from api.ui.charts import histogram
from api.ui.render import render
from api.ui.signin import cookie_user, html_page, same_site, staff_member
from api.ui.student import course_context
from core.models import Assignment, Course, GradingJob, Submission, User, utcnow

router = APIRouter()
Regrade = Annotated[RegradeRequest | None, Body()]


def gradebook_table(
    db: Session, course: Course
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The gradebook (`build_gradebook`, the CSV's rule) as columns and rows for a page.
    A student without any graded submission for an exercise has no value there (None),
    where the CSV writes 0."""
    book = build_gradebook(db, course)
    columns: list[dict[str, Any]] = []
    for a in book.assignments:
        columns.append(
            {"key": a.slug, "assignment": a.slug, "exercise": None, "max_score": a.max_score}
        )
        columns.extend(
            {
                "key": f"{a.slug}/{e.slug}",
                "assignment": a.slug,
                "exercise": e.slug,
                "max_score": e.max_score,
                "kind": e.kind,
            }
            for e in a.exercises
        )
    rows: list[dict[str, Any]] = []
    for student in book.students:
        scores: dict[str, float] = {}
        links: dict[str, str] = {}
        for a in book.assignments:
            for e in a.exercises:
                cell = book.cells.get((student.id, a.id, e.slug))
                if cell is not None:
                    scores[f"{a.slug}/{e.slug}"] = cell.score
                    links[f"{a.slug}/{e.slug}"] = cell.submission_id
            if any(f"{a.slug}/{e.slug}" in scores for e in a.exercises):
                scores[a.slug] = book.assignment_total(student, a)
        rows.append({"student": student.name, "scores": scores, "links": links})
    return columns, rows


@router.get("/ui/courses/{course}/gradebook")
@html_page
def gradebook_page(request: Request, db: DB, course: str) -> Response:
    member = staff_member(request, db, course)
    columns, rows = gradebook_table(db, member.course)
    return render(
        request,
        "gradebook.html",
        user=member.user,
        columns=columns,
        rows=rows,
        **course_context(member, "gradebook"),
    )


@router.get("/ui/courses/{course}/gradebook.csv")
def gradebook_csv(request: Request, db: DB, course: str, format: str = "wide") -> Response:
    """The JSON API's gradebook.csv, downloadable from the gradebook page."""
    member = course_member(db, cookie_user(request, db), course)
    require_staff(member)
    return csv_response(
        *gradebook_download(db, member.course, "long" if format == "long" else "wide")
    )


@router.get("/ui/courses/{course}/statistics")
@html_page
def statistics_page(request: Request, db: DB, course: str) -> Response:
    member = staff_member(request, db, course)
    columns, rows = gradebook_table(db, member.course)
    groups: list[dict[str, Any]] = []
    for column in columns:
        values = [r["scores"][column["key"]] for r in rows if column["key"] in r["scores"]]
        chart = histogram(column["exercise"] or column["assignment"], values, column["max_score"])
        if column["exercise"] is None:
            groups.append({"assignment": column["assignment"], "total": chart, "exercises": []})
        else:
            groups[-1]["exercises"].append(chart)
    return render(
        request,
        "statistics.html",
        user=member.user,
        groups=groups,
        students=len(rows),
        **course_context(member, "statistics"),
    )


QUEUE_SECTIONS = (
    ("queued", "Waiting", GradingJob.created_at.asc(), 500),
    ("running", "Running", GradingJob.started_at.asc(), 500),
    ("failed", "Failed (the service could not grade)", GradingJob.finished_at.desc(), 100),
)


@router.get("/ui/courses/{course}/queue")
@html_page
def queue_page(request: Request, db: DB, course: str) -> Response:
    member = staff_member(request, db, course)
    base = (
        select(GradingJob, Submission, Assignment, User)
        .join(Submission, GradingJob.submission_id == Submission.id)
        .join(Assignment, Submission.assignment_id == Assignment.id)
        .join(User, Submission.user_id == User.id)
        .where(Assignment.course_id == member.course.id)
    )
    sections = []
    for status, title, order, limit in QUEUE_SECTIONS:
        rows = db.execute(
            base.where(GradingJob.status == status).order_by(order, GradingJob.id).limit(limit)
        ).all()
        now = utcnow()
        jobs = []
        for job, submission, assignment, student in rows:
            since = job.started_at if status == "running" else job.created_at
            jobs.append(
                {
                    "id": job.id,
                    "submission": submission.id,
                    "student": student.name,
                    "assignment": assignment.slug,
                    "queue": job.queue,
                    "attempt": job.attempt,
                    "reason": job.reason,
                    "created_at": job.created_at,
                    "started_at": job.started_at,
                    "finished_at": job.finished_at,
                    "worker_host": job.worker_host,
                    "error": job.error,
                    "age": (now - since).total_seconds() if since else None,
                }
            )
        sections.append({"status": status, "title": title, "jobs": jobs})
    return render(
        request,
        "queue.html",
        user=member.user,
        sections=sections,
        now=utcnow(),
        **course_context(member, "queue"),
    )


def _json(model: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(
        model.model_dump(mode="json"), status_code=status, headers={"Cache-Control": "no-store"}
    )


@router.post("/ui/submissions/{submission_id}/regrade")
def regrade_submission(
    request: Request, db: DB, submission_id: str, body: Regrade = None
) -> JSONResponse:
    same_site(request)
    body = body or RegradeRequest()
    return _json(
        regrades.regrade_submission(
            db, cookie_user(request, db), submission_id, body.exercise, body.reason
        ),
        202,
    )


@router.post("/ui/courses/{course}/assignments/{assignment}/regrade")
def regrade_assignment(
    request: Request, db: DB, course: str, assignment: str, body: Regrade = None
) -> JSONResponse:
    same_site(request)
    body = body or RegradeRequest()
    member = course_member(db, cookie_user(request, db), course)
    return _json(
        regrades.regrade_assignment(db, member, assignment, body.exercise, body.reason), 202
    )


@router.get("/ui/regrades/{batch_id}")
def regrade_progress(request: Request, db: DB, batch_id: str) -> JSONResponse:
    return _json(regrades.batch_status(db, cookie_user(request, db), batch_id))
