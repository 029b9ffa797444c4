"""The pages every member sees: their courses, an assignment and its upload form, a
submission with its live status and feedback. Each handler calls the services the JSON
API calls (api/services), with the same rules (api/services/access.py)."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import DB
from api.services import events
from api.services.access import (
    Membership,
    course_member,
    get_assignment,
    user_for,
    visible_submission,
)
from api.services.gradebook import counted_cells
from api.services.presenters import history_view, job_view, submission_view
from api.ui.render import error_page, fragment, render
from api.ui.signin import (
    NOT_SIGNED_IN,
    SignInRequired,
    cookie_token,
    html_page,
    page_member,
    page_user,
    same_site,
)
from api.uploads import receive_submission
from core import policy
from core.db import get_sessionmaker
from core.errors import DomainError, NotSignedIn
from core.models import Assignment, Course, Enrollment, GradingJob, Submission, utcnow
from graders.intake import SUFFIXES

router = APIRouter()


def course_context(member: Membership, section: str) -> dict[str, Any]:
    return {
        "course": {"slug": member.course.slug, "title": member.course.title},
        "role": member.role,
        "is_staff": member.is_staff,
        "section": section,
    }


def counted_totals(db: Session, user_id: int, assignments: list[Assignment]) -> dict[int, float]:
    """The caller's score that counts per assignment (the gradebook's rule), where graded."""
    policies = {a.id: a.counting_policy or "last" for a in assignments}
    valid = {(a.id, e.slug) for a in assignments for e in a.exercises}
    totals: dict[int, float] = {}
    for (_, assignment_id, slug), cell in counted_cells(db, policies, user_id=user_id).items():
        if (assignment_id, slug) in valid:
            totals[assignment_id] = round(totals.get(assignment_id, 0.0) + cell.score, 6)
    return totals


@router.get("/ui/")
@html_page
def home(request: Request, db: DB) -> Response:
    user = page_user(request, db)
    rows = db.execute(
        select(Course, Enrollment.role)
        .join(Enrollment, Enrollment.course_id == Course.id)
        .where(Enrollment.user_id == user.id)
        .order_by(Course.slug)
    ).all()
    if len(rows) == 1:
        return RedirectResponse(f"/ui/courses/{quote(rows[0][0].slug)}", 303)
    courses = [{"slug": c.slug, "title": c.title, "role": role} for c, role in rows]
    return render(request, "home.html", user=user, courses=courses)


@router.get("/ui/courses/{course}")
@html_page
def course_page(request: Request, db: DB, course: str) -> Response:
    member = page_member(request, db, course)
    assignments = db.scalars(
        select(Assignment)
        .where(Assignment.course_id == member.course.id)
        .order_by(Assignment.position, Assignment.slug)
    ).all()
    now = utcnow()
    totals = counted_totals(db, member.user.id, list(assignments))
    rows = []
    for a in assignments:
        due = policy.effective_due(db, a, member.user.id)
        counting = (
            select(func.count()).select_from(Submission).where(Submission.assignment_id == a.id)
        )
        if not member.is_staff:
            counting = counting.where(Submission.user_id == member.user.id)
        rows.append(
            {
                "slug": a.slug,
                "title": a.title,
                "due_at": a.due_at,
                "your_due_at": due,
                "extended": due != a.due_at,
                "overdue": due is not None and now > due,
                "max_score": a.max_score,
                "score": totals.get(a.id),
                "submissions": int(db.scalar(counting) or 0),
                "exercises": len(a.exercises),
            }
        )
    return render(
        request,
        "course.html",
        user=member.user,
        assignments=rows,
        **course_context(member, "assignments"),
    )


@router.get("/ui/courses/{course}/assignments/{assignment}")
@html_page
def assignment_page(request: Request, db: DB, course: str, assignment: str) -> Response:
    member = page_member(request, db, course)
    target = get_assignment(db, member.course, assignment)
    return assignment_response(request, db, member, target)


def assignment_response(
    request: Request,
    db: Session,
    member: Membership,
    target: Assignment,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    due = policy.effective_due(db, target, member.user.id)
    query = select(Submission).where(Submission.assignment_id == target.id)
    if not member.is_staff:
        query = query.where(Submission.user_id == member.user.id)
    total = int(db.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = db.scalars(query.order_by(Submission.submitted_at.desc()).limit(200)).all()
    submissions = [
        submission_view(db, s, viewer_is_staff=member.is_staff).model_dump(mode="json")
        for s in rows
    ]
    current = counted_totals(db, member.user.id, [target]).get(target.id)
    return render(
        request,
        "assignment.html",
        status_code=status_code,
        user=member.user,
        assignment={
            "slug": target.slug,
            "title": target.title,
            "due_at": target.due_at,
            "your_due_at": due,
            "max_score": target.max_score,
            "counting": target.counting_policy,
            "late_policy": target.late_policy or {},
            "cap_total": target.cap_total,
            "cap_per_day": target.cap_per_day,
            "exercises": [
                {"slug": e.slug, "kind": e.kind, "max_score": e.max_score, "device": e.device}
                for e in target.exercises
            ],
        },
        current=current,
        submissions=submissions,
        total_submissions=total,
        error=error,
        accept=",".join(SUFFIXES),
        suffixes=" ".join(SUFFIXES),
        idempotency_key=secrets.token_urlsafe(16),
        **course_context(member, "assignments"),
    )


def job_history(db: Session, submission: Submission) -> list[dict[str, Any]]:
    """Every job of the submission, newest first: the job record and the score it
    replaced (`history_view`: before -> after)."""
    jobs = {
        j.id: j
        for j in db.scalars(select(GradingJob).where(GradingJob.submission_id == submission.id))
    }
    history = []
    for entry in history_view(db, submission):
        view = job_view(db, jobs[str(entry["job_id"])]).model_dump(mode="json")
        view.update(entry)
        before, after = entry["score_before"], entry["score_after"]
        view["change"] = (
            round(float(after) - float(before), 6)  # type: ignore[arg-type]
            if before is not None and after is not None
            else None
        )
        history.append(view)
    return list(reversed(history))


@router.get("/ui/submissions/{submission_id}")
@html_page
def submission_page(request: Request, db: DB, submission_id: str) -> Response:
    user = page_user(request, db)
    submission, member = visible_submission(db, user, submission_id)
    view = submission_view(db, submission, viewer_is_staff=member.is_staff).model_dump(mode="json")
    jobs = job_history(db, submission) if member.is_staff else []
    return render(
        request,
        "submission.html",
        user=user,
        sub=view,
        jobs=jobs,
        assignment_title=submission.assignment.title,
        **course_context(member, "assignments"),
    )


@router.get("/ui/submissions/{submission_id}/feedback")
@html_page
def feedback_fragment(request: Request, db: DB, submission_id: str) -> Response:
    """The feedback part of the submission page, for the live update after grading."""
    user = page_user(request, db)
    submission, member = visible_submission(db, user, submission_id)
    view = submission_view(db, submission, viewer_is_staff=member.is_staff).model_dump(mode="json")
    return fragment("_feedback.html", sub=view)


@router.get("/ui/submissions/{submission_id}/events")
async def submission_events(request: Request, submission_id: str) -> Response:
    """The submission's status as server-sent events, for a page signed in with the cookie.

    Access is checked in one thread-pool hop with a session of its own, closed before the
    stream starts (as the API's route does): a burst of open pages must not hold pooled
    connections while they wait for threads."""
    await run_in_threadpool(events.check_access, cookie_token(request), submission_id, "cookie")
    return StreamingResponse(
        events.status_events(submission_id, request.is_disconnected),
        media_type="text/event-stream",
        headers=events.HEADERS,
    )


def _uploader(token: str, course: str, assignment: str) -> int:
    """The signed-in member's user id, once the course and assignment are known."""
    with get_sessionmaker()() as db:
        user = user_for(db, token, where="cookie")
        member = course_member(db, user, course)
        get_assignment(db, member.course, assignment)
        return user.id


@router.post("/ui/courses/{course}/assignments/{assignment}/submissions")
async def upload(request: Request, course: str, assignment: str) -> Response:
    """The upload form: JSON for the page's script, a redirect for a plain form post."""
    same_site(request)
    wants_json = request.headers.get("x-requested-with") == "fetch"
    token = cookie_token(request)
    try:
        if token is None:
            raise NotSignedIn(NOT_SIGNED_IN)
        user_id = await run_in_threadpool(_uploader, token, course, assignment)
        created = await receive_submission(
            request, user_id, course, assignment, request.headers.get("idempotency-key")
        )
    except NotSignedIn:
        if wants_json:
            raise
        return RedirectResponse("/ui/login", 303)
    except DomainError as exc:
        if wants_json:
            raise
        return await run_in_threadpool(_upload_failed, request, course, assignment, exc)
    if wants_json:
        return JSONResponse(
            created.model_dump(mode="json"), status_code=202, headers={"Cache-Control": "no-store"}
        )
    return RedirectResponse(f"/ui/submissions/{quote(created.id)}", 303)


def _upload_failed(
    request: Request, course: str, assignment: str, refusal: DomainError
) -> Response:
    """The assignment page again, with the refusal's sentence and status."""
    with get_sessionmaker()() as db:
        try:
            member = page_member(request, db, course)
            target = get_assignment(db, member.course, assignment)
        except SignInRequired:
            return RedirectResponse("/ui/login", 303)
        except DomainError as exc:
            return error_page(request, exc.status, exc.message)
        response = assignment_response(request, db, member, target, refusal.message, refusal.status)
        response.headers.update(refusal.headers)
        return response
