"""Server-rendered pages for students and staff, signed in with a token in a cookie.

The JSON API keeps its `Authorization: Bearer` header; this router is the only place
that reads the cookie. Pages render what the JSON API would show the same caller
(`submission_view`, `job_view`), through Jinja2 templates with autoescape on.

Where a page needs an action or a live stream (upload, server-sent events, regrades,
the gradebook CSV), it does not reimplement it: `/ui/...` forwards the request inside
the process to the matching `/api/v1/...` endpoint, with the cookie's token turned
into a Bearer header, so both always share one implementation and one set of checks.
POSTs under `/ui` must come from this site (SameSite=Strict cookie, and the Origin /
Sec-Fetch-Site headers are checked).
"""

from __future__ import annotations

import functools
import json
import math
import re
import secrets
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from api.deps import DB, Membership, get_assignment, get_course, membership
from api.services.gradebook import build_gradebook, counted_cells
from api.services.views import history_view, job_view, submission_view
from core import policy
from core.accounts import user_for_token
from core.models import (
    Assignment,
    Course,
    Enrollment,
    GradingJob,
    Submission,
    User,
    utcnow,
)
from core.settings import get_settings

HERE = Path(__file__).resolve().parent
COOKIE = "ag_session"
COOKIE_MAX_AGE = 7 * 24 * 3600
ALLOWED_SUFFIXES = (".ipynb", ".py", ".safetensors", ".pt", ".onnx")
_TOKEN_RE = re.compile(r"[\x21-\x7e]{1,512}")
_SLUG_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")

router = APIRouter(include_in_schema=False)
router.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


# -- formatting helpers used by the templates ---------------------------------------

def fmt_time(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def iso(value: datetime | str | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else value.isoformat()


def fmt_score(value: float | None) -> str:
    if value is None:
        return "—"
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def fmt_late(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours = rest // 3600
    return f"{days} d {hours} h" if days else f"{hours} h {rest % 3600 // 60} min"


templates.filters.update(time=fmt_time, iso=iso, score=fmt_score, duration=fmt_duration,
                         late=fmt_late, short=lambda s: (s or "")[:8])


def render(request: Request, name: str, status_code: int = 200,
           user: User | None = None, **context: Any) -> HTMLResponse:
    body = templates.get_template(name).render(
        request_path=request.url.path, user=user, limit_mb=_limit_mb(), **context
    )
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)


def _limit_mb() -> int:
    return get_settings().max_upload_bytes // (1024 * 1024)


# -- signing in with a cookie ------------------------------------------------------

class SignInRequired(Exception):
    """The page needs a signed-in user; the browser is sent to the sign-in form."""


def cookie_token(request: Request) -> str | None:
    token = request.cookies.get(COOKIE, "")
    return token if _TOKEN_RE.fullmatch(token) else None


def cookie_user(request: Request, db: Session) -> User:
    token = cookie_token(request)
    user = user_for_token(db, token) if token else None
    if user is None:
        raise SignInRequired()
    return user


def require_cookie_token(request: Request) -> str:
    """For the /ui endpoints that answer JSON or a stream: 401 with a sentence."""
    token = cookie_token(request)
    if token is None:
        raise HTTPException(401, "You are not signed in: sign in at /ui/login first.")
    return token


def same_site(request: Request) -> None:
    """Refuse a state-changing request that another site made the browser send."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise HTTPException(403, "This request must come from the autograder's own pages.")
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        here = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
        if origin.rstrip("/") != here:
            raise HTTPException(403, "This request must come from the autograder's own pages.")
    elif origin == "null":
        raise HTTPException(403, "This request must come from the autograder's own pages.")


def safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/ui/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/ui/"
    return target


def html_page(func: Callable[..., Response]) -> Callable[..., Response]:
    """Errors of a page become a page (not JSON); no cookie sends the browser to sign in."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        request: Request = kwargs["request"]
        try:
            return func(*args, **kwargs)
        except SignInRequired:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", 303)
        except HTTPException as exc:
            return render(request, "error.html", status_code=exc.status_code,
                          status=exc.status_code,
                          detail=str(exc.detail))

    return wrapper


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/", 303)


@router.get("/ui/login")
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", next=safe_next(next), error=None)


@router.post("/ui/login")
async def login(request: Request) -> Response:
    same_site(request)
    form = await request.form(max_files=0, max_fields=5)
    token = str(form.get("token", "")).strip()
    target = safe_next(str(form.get("next", "")))
    user = None
    if _TOKEN_RE.fullmatch(token):
        user = await run_in_threadpool(_user_name_for_token, token)
    if user is None:
        return render(request, "login.html", status_code=401, next=target,
                      error="That token is not valid (unknown or revoked). Copy it again "
                            "from the output of `autograder user add` or `make up`.")
    response = RedirectResponse(target, 303)
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


def _user_name_for_token(token: str) -> str | None:
    from core.db import get_sessionmaker

    with get_sessionmaker()() as session:
        user = user_for_token(session, token)
        return user.name if user else None


@router.post("/ui/logout")
def logout(request: Request) -> RedirectResponse:
    same_site(request)
    response = RedirectResponse("/ui/login", 303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


# -- students' pages ----------------------------------------------------------------

@router.get("/ui/")
@html_page
def home(request: Request, db: DB) -> Response:
    user = cookie_user(request, db)
    rows = db.execute(
        select(Course, Enrollment.role).join(Enrollment, Enrollment.course_id == Course.id)
        .where(Enrollment.user_id == user.id).order_by(Course.slug)
    ).all()
    if len(rows) == 1:
        return RedirectResponse(f"/ui/courses/{quote(rows[0][0].slug)}", 303)
    courses = [{"slug": c.slug, "title": c.title, "role": role} for c, role in rows]
    return render(request, "home.html", user=user, courses=courses)


def page_member(request: Request, db: Session, course: str) -> Membership:
    user = cookie_user(request, db)
    return membership(db, user, get_course(db, course))


def staff_member(request: Request, db: Session, course: str) -> Membership:
    member = page_member(request, db, course)
    if not member.is_staff:
        raise HTTPException(403, "Only the course's TAs and instructors may see this page.")
    return member


def course_context(member: Membership, section: str) -> dict[str, Any]:
    return {"course": {"slug": member.course.slug, "title": member.course.title},
            "role": member.role, "is_staff": member.is_staff, "section": section}


def counted_totals(db: Session, user_id: int,
                   assignments: list[Assignment]) -> dict[int, float]:
    """The caller's score that counts per assignment (the gradebook's rule), where graded."""
    policies = {a.id: a.counting_policy or "last" for a in assignments}
    valid = {(a.id, e.slug) for a in assignments for e in a.exercises}
    totals: dict[int, float] = {}
    for (_, assignment_id, slug), cell in counted_cells(db, policies, user_id=user_id).items():
        if (assignment_id, slug) in valid:
            totals[assignment_id] = round(totals.get(assignment_id, 0.0) + cell.score, 6)
    return totals


@router.get("/ui/courses/{course}")
@html_page
def course_page(request: Request, db: DB, course: str) -> Response:
    member = page_member(request, db, course)
    assignments = db.scalars(
        select(Assignment).where(Assignment.course_id == member.course.id)
        .order_by(Assignment.position, Assignment.slug)
    ).all()
    now = utcnow()
    totals = counted_totals(db, member.user.id, list(assignments))
    rows = []
    for a in assignments:
        due = policy.effective_due(db, a, member.user.id)
        counting = select(func.count()).select_from(Submission).where(
            Submission.assignment_id == a.id)
        if not member.is_staff:
            counting = counting.where(Submission.user_id == member.user.id)
        count = int(db.scalar(counting) or 0)
        rows.append({
            "slug": a.slug, "title": a.title, "due_at": a.due_at, "your_due_at": due,
            "extended": due != a.due_at, "overdue": due is not None and now > due,
            "max_score": a.max_score, "score": totals.get(a.id),
            "submissions": count, "exercises": len(a.exercises),
        })
    return render(request, "course.html", user=member.user, assignments=rows,
                  **course_context(member, "assignments"))


@router.get("/ui/courses/{course}/assignments/{assignment}")
@html_page
def assignment_page(request: Request, db: DB, course: str, assignment: str) -> Response:
    member = page_member(request, db, course)
    target = get_assignment(db, member.course, assignment)
    return _assignment_response(request, db, member, target)


def _assignment_response(request: Request, db: Session, member: Membership, target: Assignment,
                         error: str | None = None, status_code: int = 200) -> Response:
    due = policy.effective_due(db, target, member.user.id)
    query = select(Submission).where(Submission.assignment_id == target.id)
    if not member.is_staff:
        query = query.where(Submission.user_id == member.user.id)
    total = int(db.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = db.scalars(query.order_by(Submission.submitted_at.desc()).limit(200)).all()
    submissions = [submission_view(db, s, viewer_is_staff=member.is_staff).model_dump(mode="json")
                   for s in rows]
    current = counted_totals(db, member.user.id, [target]).get(target.id)
    late_policy = target.late_policy or {}
    return render(
        request, "assignment.html", status_code=status_code, user=member.user,
        assignment={
            "slug": target.slug, "title": target.title, "due_at": target.due_at,
            "your_due_at": due, "max_score": target.max_score,
            "counting": target.counting_policy, "late_policy": late_policy,
            "cap_total": target.cap_total, "cap_per_day": target.cap_per_day,
            "exercises": [{"slug": e.slug, "kind": e.kind, "max_score": e.max_score,
                           "device": e.device} for e in target.exercises],
        },
        current=current,
        submissions=submissions, total_submissions=total, error=error,
        accept=",".join(ALLOWED_SUFFIXES), suffixes=" ".join(ALLOWED_SUFFIXES),
        idempotency_key=secrets.token_urlsafe(16),
        **course_context(member, "assignments"),
    )


@router.get("/ui/submissions/{submission_id}")
@html_page
def submission_page(request: Request, db: DB, submission_id: str) -> Response:
    user = cookie_user(request, db)
    submission, member = _load_submission(db, user, submission_id)
    view = submission_view(db, submission, viewer_is_staff=member.is_staff).model_dump(mode="json")
    jobs = job_history(db, submission) if member.is_staff else []
    return render(request, "submission.html", user=user, sub=view, jobs=jobs,
                  assignment_title=submission.assignment.title,
                  **course_context(member, "assignments"))


def _load_submission(db: Session, user: User, submission_id: str) -> tuple[Submission, Membership]:
    from api.routers.submissions import _load_submission as load

    return load(db, user, submission_id)


@router.get("/ui/submissions/{submission_id}/feedback")
@html_page
def feedback_fragment(request: Request, db: DB, submission_id: str) -> Response:
    """The feedback part of the submission page, for the live update after grading."""
    user = cookie_user(request, db)
    submission, member = _load_submission(db, user, submission_id)
    view = submission_view(db, submission, viewer_is_staff=member.is_staff).model_dump(mode="json")
    body = templates.get_template("_feedback.html").render(sub=view)
    return HTMLResponse(body, headers=SECURITY_HEADERS)


def job_history(db: Session, submission: Submission) -> list[dict[str, Any]]:
    """Every job of the submission, newest first: the job record and the score it
    replaced (`history_view`: before -> after)."""
    jobs = {j.id: j for j in db.scalars(
        select(GradingJob).where(GradingJob.submission_id == submission.id))}
    history = []
    for entry in history_view(db, submission):
        view = job_view(db, jobs[str(entry["job_id"])]).model_dump(mode="json")
        view.update(entry)
        before, after = entry["score_before"], entry["score_after"]
        view["change"] = (round(float(after) - float(before), 6)  # type: ignore[arg-type]
                          if before is not None and after is not None else None)
        history.append(view)
    return list(reversed(history))


# -- staff pages --------------------------------------------------------------------

def gradebook_table(db: Session, course: Course) -> tuple[list[dict[str, Any]],
                                                         list[dict[str, Any]]]:
    """The gradebook (`build_gradebook`, the CSV's rule) as columns and rows for a page.
    A student without any graded submission for an exercise has no value there (None),
    where the CSV writes 0."""
    book = build_gradebook(db, course)
    columns: list[dict[str, Any]] = []
    for a in book.assignments:
        columns.append({"key": a.slug, "assignment": a.slug, "exercise": None,
                        "max_score": a.max_score})
        columns.extend({"key": f"{a.slug}/{e.slug}", "assignment": a.slug, "exercise": e.slug,
                        "max_score": e.max_score} for e in a.exercises)
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
    return render(request, "gradebook.html", user=member.user, columns=columns, rows=rows,
                  **course_context(member, "gradebook"))


@dataclass
class Histogram:
    title: str
    max_score: float
    count: int
    mean: float | None
    median: float | None
    bars: list[dict[str, Any]]
    ticks: list[dict[str, Any]]
    width: int = 320
    height: int = 160
    plot_top: int = 10
    plot_bottom: int = 130
    plot_left: int = 34
    plot_right: int = 310
    peak: int = 0


def histogram(title: str, values: Iterable[float], max_score: float, bins: int = 10) -> Histogram:
    """Bars for a histogram of scores from 0 to max_score, laid out for an inline SVG."""
    values = [v for v in values if v is not None]
    top = max_score if max_score > 0 else max(values, default=1.0) or 1.0
    counts = [0] * bins
    for v in values:
        index = min(bins - 1, max(0, int(math.floor(v / top * bins)))) if top else 0
        counts[index] += 1
    h = Histogram(title=title, max_score=max_score, count=len(values),
                  mean=round(statistics.fmean(values), 2) if values else None,
                  median=round(statistics.median(values), 2) if values else None,
                  bars=[], ticks=[])
    peak = max(counts) or 1
    plot_w = h.plot_right - h.plot_left
    plot_h = h.plot_bottom - h.plot_top
    slot = plot_w / bins
    for i, n in enumerate(counts):
        low, high = top * i / bins, top * (i + 1) / bins
        bar_h = plot_h * n / peak
        h.bars.append({
            "x": round(h.plot_left + i * slot + 1, 2), "width": round(slot - 2, 2),
            "y": round(h.plot_bottom - bar_h, 2), "height": round(bar_h, 2), "count": n,
            "label": f"{fmt_score(round(low, 2))} to {fmt_score(round(high, 2))}"
                     f"{' (inclusive)' if i == bins - 1 else ''}: {n} "
                     f"student{'s' if n != 1 else ''}",
        })
    for i in (0, bins // 2, bins):
        h.ticks.append({"x": round(h.plot_left + i * slot, 2),
                        "label": fmt_score(round(top * i / bins, 2))})
    h.peak = peak
    return h


@router.get("/ui/courses/{course}/statistics")
@html_page
def statistics_page(request: Request, db: DB, course: str) -> Response:
    member = staff_member(request, db, course)
    columns, rows = gradebook_table(db, member.course)
    groups: list[dict[str, Any]] = []
    for column in columns:
        values = [r["scores"][column["key"]] for r in rows if column["key"] in r["scores"]]
        chart = histogram(column["exercise"] or column["assignment"], values,
                          column["max_score"])
        if column["exercise"] is None:
            groups.append({"assignment": column["assignment"], "total": chart, "exercises": []})
        else:
            groups[-1]["exercises"].append(chart)
    return render(request, "statistics.html", user=member.user, groups=groups,
                  students=len(rows), **course_context(member, "statistics"))


@router.get("/ui/courses/{course}/queue")
@html_page
def queue_page(request: Request, db: DB, course: str) -> Response:
    member = staff_member(request, db, course)
    base = (select(GradingJob, Submission, Assignment, User)
            .join(Submission, GradingJob.submission_id == Submission.id)
            .join(Assignment, Submission.assignment_id == Assignment.id)
            .join(User, Submission.user_id == User.id)
            .where(Assignment.course_id == member.course.id))
    sections = []
    for status, title, order, limit in (
        ("queued", "Waiting", GradingJob.created_at.asc(), 500),
        ("running", "Running", GradingJob.started_at.asc(), 500),
        ("failed", "Failed (the service could not grade)", GradingJob.finished_at.desc(), 100),
    ):
        rows = db.execute(base.where(GradingJob.status == status)
                          .order_by(order, GradingJob.id).limit(limit)).all()
        now = utcnow()
        jobs = []
        for job, submission, assignment, student in rows:
            since = job.started_at if status == "running" else job.created_at
            jobs.append({
                "id": job.id, "submission": submission.id, "student": student.name,
                "assignment": assignment.slug, "queue": job.queue, "attempt": job.attempt,
                "reason": job.reason, "created_at": job.created_at,
                "started_at": job.started_at, "finished_at": job.finished_at,
                "worker_host": job.worker_host, "error": job.error,
                "age": (now - since).total_seconds() if since else None,
            })
        sections.append({"status": status, "title": title, "jobs": jobs})
    return render(request, "queue.html", user=member.user, sections=sections,
                  now=utcnow(), **course_context(member, "queue"))


# -- forwarding to the JSON API with the cookie's token -------------------------------

_SCOPE_KEYS = ("type", "asgi", "http_version", "method", "scheme", "server", "client",
               "root_path", "extensions", "state", "app")


def api_scope(request: Request, token: str, path: str, method: str | None = None,
              query: str = "") -> Scope:
    """The request as the JSON API would receive it from a Bearer client."""
    scope = request.scope
    headers = [(k, v) for k, v in scope["headers"] if k not in (b"authorization", b"cookie")]
    headers.append((b"authorization", b"Bearer " + token.encode("ascii")))
    new: Scope = {k: scope[k] for k in _SCOPE_KEYS if k in scope}
    full = scope.get("root_path", "") + path
    new.update(path=full, raw_path=full.encode(), query_string=query.encode(),
               headers=headers)
    if method is not None:
        new["method"] = method
    return new


class ApiStream(Response):
    """Streams the JSON API's answer as it comes (server-sent events)."""

    def __init__(self, scope: Scope) -> None:
        super().__init__()
        self.api_scope = scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope["app"](self.api_scope, receive, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def api_call(request: Request, token: str, path: str, method: str = "GET",
                   query: str = "", with_body: bool = False) -> tuple[int, list, bytes]:
    """Call the JSON API in-process; returns status, headers and the whole body."""
    answer: dict[str, Any] = {"status": 500, "headers": []}
    body = bytearray()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = message.get("headers", [])
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    receive = request.receive if with_body else _no_body
    await request.app(api_scope(request, token, path, method, query), receive, send)
    return answer["status"], answer["headers"], bytes(body)


def _json_answer(status: int, body: bytes) -> JSONResponse:
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        payload = {"detail": "The service gave an answer that is not JSON."}
        status = 502
    return JSONResponse(payload, status_code=status, headers={"Cache-Control": "no-store"})


def _check_slug(*values: str) -> None:
    for value in values:
        if not _SLUG_RE.fullmatch(value):
            raise HTTPException(404, f"There is no {value[:64]!r} here.")


@router.get("/ui/submissions/{submission_id}/events")
def submission_events(request: Request, submission_id: str) -> Response:
    """The /api/v1/submissions/{id}/events stream, for a page signed in with the cookie."""
    token = require_cookie_token(request)
    _check_slug(submission_id)
    return ApiStream(api_scope(request, token, f"/api/v1/submissions/{submission_id}/events"))


@router.post("/ui/courses/{course}/assignments/{assignment}/submissions")
async def upload(request: Request, course: str, assignment: str) -> Response:
    """The upload form: JSON for the page's script, a redirect for a plain form post."""
    same_site(request)
    _check_slug(course, assignment)
    wants_json = request.headers.get("x-requested-with") == "fetch"
    token = cookie_token(request)
    if token is None:
        if wants_json:
            raise HTTPException(401, "You are not signed in: sign in at /ui/login first.")
        return RedirectResponse("/ui/login", 303)
    status, _, body = await api_call(
        request, token, f"/api/v1/courses/{course}/assignments/{assignment}/submissions",
        "POST", with_body=True)
    if wants_json:
        return _json_answer(status, body)
    try:
        payload = json.loads(body)
    except ValueError:
        payload = {}
    if status == 202 and isinstance(payload, dict) and "id" in payload:
        return RedirectResponse(f"/ui/submissions/{quote(str(payload['id']))}", 303)
    detail = payload.get("detail") if isinstance(payload, dict) else None
    return await run_in_threadpool(_upload_failed, request, course, assignment,
                                   str(detail or "The upload failed."), status)


def _upload_failed(request: Request, course: str, assignment: str, detail: str,
                   status: int) -> Response:
    from core.db import get_sessionmaker

    with get_sessionmaker()() as db:
        try:
            member = page_member(request, db, course)
            target = get_assignment(db, member.course, assignment)
        except SignInRequired:
            return RedirectResponse("/ui/login", 303)
        except HTTPException as exc:
            return render(request, "error.html", status_code=exc.status_code,
                          status=exc.status_code, detail=str(exc.detail))
        return _assignment_response(request, db, member, target, detail, status)


@router.post("/ui/submissions/{submission_id}/regrade")
async def regrade_submission(request: Request, submission_id: str) -> JSONResponse:
    same_site(request)
    token = require_cookie_token(request)
    _check_slug(submission_id)
    status, _, body = await api_call(request, token,
                                     f"/api/v1/submissions/{submission_id}/regrade",
                                     "POST", with_body=True)
    return _json_answer(status, body)


@router.post("/ui/courses/{course}/assignments/{assignment}/regrade")
async def regrade_assignment(request: Request, course: str, assignment: str) -> JSONResponse:
    same_site(request)
    token = require_cookie_token(request)
    _check_slug(course, assignment)
    status, _, body = await api_call(
        request, token, f"/api/v1/courses/{course}/assignments/{assignment}/regrade",
        "POST", with_body=True)
    return _json_answer(status, body)


@router.get("/ui/regrades/{batch_id}")
async def regrade_progress(request: Request, batch_id: str) -> JSONResponse:
    token = require_cookie_token(request)
    _check_slug(batch_id)
    status, _, body = await api_call(request, token, f"/api/v1/regrades/{batch_id}")
    return _json_answer(status, body)


@router.get("/ui/courses/{course}/gradebook.csv")
async def gradebook_csv(request: Request, course: str) -> Response:
    """The JSON API's gradebook.csv, downloadable from the gradebook page."""
    token = require_cookie_token(request)
    _check_slug(course)
    fmt = request.query_params.get("format")
    query = "format=long" if fmt == "long" else ""
    status, headers, body = await api_call(request, token,
                                           f"/api/v1/courses/{course}/gradebook.csv",
                                           query=query)
    if status != 200:
        return _json_answer(status, body)
    wanted = {b"content-type", b"content-disposition"}
    kept = {k.decode(): v.decode() for k, v in headers if k.lower() in wanted}
    kept.setdefault("content-type", "text/csv; charset=utf-8")
    kept.setdefault("content-disposition", f'attachment; filename="{course}-gradebook.csv"')
    return Response(body, status_code=200, headers=kept)

