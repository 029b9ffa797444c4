"""The staff's grading page of a manual exercise: one answer at a time, in the grader's
own stable order (optionally anonymous until graded), the answer as the manual grading
service's sanitised HTML, the rubric as toggles, an adjustment and a comment; and the
endpoint its script saves a grade through (the JSON API's PUT, with the cookie).

Every handler calls api/services/manual, the service the JSON API calls; the answer's
HTML comes only from its sanitiser (api/services/manual/render.py) and is the one piece
of markup these pages pass to a template unescaped.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse, Response
from markupsafe import Markup

from api.deps import DB
from api.schemas_manual import MAX_COMMENT, GradingEntry, ManualGradeIn
from api.services import manual
from api.services.access import get_assignment, visible_submission
from api.ui.render import render
from api.ui.signin import cookie_user, html_page, same_site, staff_member
from api.ui.student import course_context
from core.errors import NotFound

router = APIRouter()

GRADING = "/ui/courses/{course}/assignments/{assignment}/exercises/{exercise}/grading"


def grading_url(
    course: str,
    assignment: str,
    exercise: str,
    submission: str | None = None,
    anonymous: bool = False,
) -> str:
    path = GRADING.format(
        course=quote(course, safe=""),
        assignment=quote(assignment, safe=""),
        exercise=quote(exercise, safe=""),
    )
    query = {
        k: v
        for k, v in (("submission", submission), ("anonymous", "1" if anonymous else None))
        if v
    }
    return path + (f"?{urlencode(query)}" if query else "")


def save_url(submission_id: str, exercise: str) -> str:
    """Where the page's script saves a grade (`save_grade`)."""
    submission, slug = quote(submission_id, safe=""), quote(exercise, safe="")
    return f"/ui/submissions/{submission}/exercises/{slug}/manual"


def progress_of(entries: list[GradingEntry]) -> dict[str, int]:
    return {"graded": sum(1 for e in entries if e.graded), "total": len(entries)}


def pick(entries: list[GradingEntry], submission: str | None) -> int | None:
    """The position of the answer to show: the one asked for, else the first not graded
    yet in the grader's order (else the first). None when there is nothing to grade."""
    if not entries:
        return None
    if submission:
        for index, entry in enumerate(entries):
            if entry.submission_id == submission:
                return index
        raise NotFound(
            "That submission is not among the answers to grade for this exercise "
            "(only each student's submission that counts is graded)."
        )
    return next((i for i, e in enumerate(entries) if not e.graded), 0)


@router.get(GRADING)
@html_page
def grading_page(
    request: Request,
    db: DB,
    course: str,
    assignment: str,
    exercise: str,
    submission: Annotated[str | None, Query(max_length=64)] = None,
    anonymous: bool = False,
) -> Response:
    member = staff_member(request, db, course)
    entries = manual.grading_list(db, member, assignment, exercise, anonymous)
    target = get_assignment(db, member.course, assignment)
    index = pick(entries, submission)
    context: dict[str, Any] = {
        "assignment": {"slug": assignment, "title": target.title},
        "exercise": {"slug": exercise, "max_score": 0.0},
        "progress": progress_of(entries),
        "anonymous": anonymous,
        "current": None,
        "toggle_anonymous_url": grading_url(
            course,
            assignment,
            exercise,
            entries[index].submission_id if index is not None else None,
            not anonymous,
        ),
        "comment_max": MAX_COMMENT,
    }
    if index is not None:
        entry = entries[index]
        answer = manual.answer_view(db, member.user, entry.submission_id, exercise, anonymous)
        grade = answer.grade

        def url_at(i: int) -> str | None:
            if not 0 <= i < len(entries):
                return None
            return grading_url(course, assignment, exercise, entries[i].submission_id, anonymous)

        context.update(
            answers=[
                {
                    "url": url_at(i),
                    "student": e.student,
                    "graded": e.graded,
                    "score": e.score,
                    "needs_review": e.needs_review,
                    "current": i == index,
                }
                for i, e in enumerate(entries)
            ],
            current={
                "submission_id": entry.submission_id,
                "student": answer.student or entry.student,
                "graded": entry.graded,
            },
            position=index + 1,
            prev_url=url_at(index - 1),
            next_url=url_at(index + 1),
            # The service's sanitiser made this HTML (nh3, an allowlist, no URL fetched):
            # the only markup the page does not escape.
            answer_html=Markup(answer.html) if answer.html.strip() else None,
            rubric={"toggles": answer.rubric, "floor": answer.floor, "ceiling": answer.ceiling},
            grade=grade,
            applied=set(grade.rubric) if grade else set(),
            save_url=save_url(entry.submission_id, exercise),
        )
        context["exercise"]["max_score"] = answer.max_score
    return render(
        request,
        "manual_grading.html",
        user=member.user,
        **context,
        **course_context(member, "assignments"),
    )


@router.put("/ui/submissions/{submission_id}/exercises/{exercise}/manual")
def save_grade(
    request: Request,
    db: DB,
    submission_id: str,
    exercise: str,
    body: Annotated[ManualGradeIn, Body()],
) -> JSONResponse:
    """The JSON API's grade PUT for the page's script (cookie, same-site only), with the
    grader's progress and the student's name (shown once graded) added."""
    same_site(request)
    user = cookie_user(request, db)
    grade = manual.put_grade(db, user, submission_id, exercise, body)
    submission, member = visible_submission(db, user, submission_id)
    entries = manual.grading_list(db, member, submission.assignment.slug, exercise)
    reply = grade.model_dump(mode="json")
    reply["progress"] = progress_of(entries)
    reply["student"] = submission.user.name
    return JSONResponse(reply, headers={"Cache-Control": "no-store"})
