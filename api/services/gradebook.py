"""Which submission counts, and the gradebook built from it.

The rule, per student and exercise: among the student's submissions that grade the
exercise (a notebook or .py grades the function and class exercises, a model file the
model ones: graders.runner.exercises_for) and have a graded job, the assignment's
counting policy picks one: ``last`` the latest submitted, ``best`` the highest final
score (penalty applied; ties go to the later one). A submission's score is that of its
latest graded job (``Submission.current_job_id``); submissions never graded (queued,
or the service failed on every job) never count. The exercise's score is the chosen
job's test points for the exercise, less that job's late penalty.

Two set-based queries whatever the number of students (the assignments and students,
then the scores), shared by the HTTP export, the CLI and the students' ``counts`` flag.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, literal, select
from sqlalchemy.orm import Session

from core.errors import NotFound, Unreadable
from core.models import (
    Assignment,
    Course,
    Enrollment,
    Exercise,
    GradingJob,
    Submission,
    TestResult,
    User,
)
from core.rubric_models import ManualGrade
from graders.intake import file_kinds_for

FORMATS = ("wide", "long")
#: The `file_group` of notebook and .py submissions (model files are group 1).
CODE_GROUP = 0
LAYOUTS = ("default", "canvas")


@dataclass(slots=True)
class Cell:
    """A student's counted result on one exercise."""

    raw: float
    penalty_percent: float
    score: float
    submission_id: str
    job_id: str
    submitted_at: datetime
    late_seconds: float


@dataclass(frozen=True)
class ExerciseColumn:
    slug: str
    kind: str
    max_score: float


@dataclass(frozen=True)
class AssignmentColumn:
    id: int
    slug: str
    title: str
    max_score: float
    counting: str
    exercises: tuple[ExerciseColumn, ...]


@dataclass(frozen=True)
class StudentRow:
    id: int
    name: str
    full_name: str
    email: str


@dataclass
class Gradebook:
    course_slug: str
    course_title: str
    assignments: list[AssignmentColumn]
    students: list[StudentRow]
    #: (user id, assignment id, exercise slug) -> the counted result
    cells: dict[tuple[int, int, str], Cell] = field(default_factory=dict)

    def scores(self, student: StudentRow, a: AssignmentColumn) -> tuple[float, list[float]]:
        """The student's total on the assignment and their score per exercise."""
        cells = self.cells
        per_exercise = []
        for e in a.exercises:
            cell = cells.get((student.id, a.id, e.slug))
            per_exercise.append(cell.score if cell is not None else 0.0)
        return round(sum(per_exercise), 6), per_exercise

    def exercise_score(self, student: StudentRow, a: AssignmentColumn, e: ExerciseColumn) -> float:
        cell = self.cells.get((student.id, a.id, e.slug))
        return cell.score if cell is not None else 0.0

    def assignment_total(self, student: StudentRow, a: AssignmentColumn) -> float:
        return self.scores(student, a)[0]


class GradebookError(Unreadable):
    """A request for a gradebook that cannot be made; the message says why."""


class UnknownAssignment(NotFound, GradebookError):
    """The gradebook of an assignment the course does not have."""


def _winners(
    policies: dict[int, str], users: Select[Any] | None, user_id: int | None
) -> Select[Any]:
    """The counted submission per (student, assignment, kind of file), as a query.

    A notebook or .py grades the function and class exercises, a model file the model
    ones (graders.runner.exercises_for), so a submission competes with the student's
    other submissions of the same group only.
    """
    scope = [Submission.assignment_id.in_(list(policies)), GradingJob.status == "graded"]
    if user_id is not None:
        scope.append(Submission.user_id == user_id)
    if users is not None:
        scope.append(Submission.user_id.in_(users))
    best = [a for a, counting in policies.items() if counting == "best"]
    score_key = (
        case((Submission.assignment_id.in_(best), GradingJob.score), else_=literal(0.0))
        if best
        else literal(0.0)
    )
    group = case(
        (Submission.file_kind.in_(sorted(file_kinds_for("model"))), literal(1)),
        else_=literal(CODE_GROUP),
    )
    rank = func.row_number().over(
        partition_by=(Submission.user_id, Submission.assignment_id, group),
        order_by=(score_key.desc(), Submission.submitted_at.desc(), Submission.id.desc()),
    )
    ranked = (
        select(
            Submission.user_id,
            Submission.assignment_id,
            Submission.id.label("submission_id"),
            Submission.submitted_at,
            GradingJob.id.label("job_id"),
            GradingJob.penalty_percent,
            GradingJob.late_seconds,
            rank.label("rank"),
            group.label("file_group"),
        )
        .join(GradingJob, GradingJob.id == Submission.current_job_id)
        .where(*scope)
        .subquery("ranked")
    )
    return select(ranked).where(ranked.c.rank == 1)


def counted_cells(
    db: Session,
    policies: dict[int, str],
    users: Select[Any] | None = None,
    user_id: int | None = None,
) -> dict[tuple[int, int, str], Cell]:
    """The counted result per (student, assignment, exercise).

    `policies` maps assignment ids to their counting policy; `users` (a subquery of user
    ids) or `user_id` narrows the students.
    """
    if not policies:
        return {}
    winners = _winners(policies, users, user_id).cte("winners")
    # Test points per exercise, of the winning jobs only.
    per_exercise = (
        select(TestResult.job_id, TestResult.exercise_slug, func.sum(TestResult.score).label("raw"))
        .where(TestResult.job_id.in_(select(winners.c.job_id)))
        .group_by(TestResult.job_id, TestResult.exercise_slug)
        .subquery("per_exercise")
    )
    # Core execution: plain tuples, no ORM loading for tens of thousands of rows.
    columns = (
        winners.c.user_id,
        winners.c.assignment_id,
        winners.c.submission_id,
        winners.c.submitted_at,
        winners.c.job_id,
        winners.c.penalty_percent,
        winners.c.late_seconds,
    )
    rows = list(
        db.connection()
        .execute(
            select(*columns, per_exercise.c.exercise_slug, per_exercise.c.raw).join(
                per_exercise, per_exercise.c.job_id == winners.c.job_id
            )
        )
        .all()
    )
    # Manual grades of the counted code submissions (CODE_GROUP), one per exercise.
    rows.extend(
        db.connection()
        .execute(
            select(*columns, Exercise.slug, ManualGrade.score)
            .join(ManualGrade, ManualGrade.submission_id == winners.c.submission_id)
            .join(Exercise, Exercise.id == ManualGrade.exercise_id)
            .where(winners.c.file_group == CODE_GROUP, Exercise.kind == "manual")
        )
        .all()
    )
    cells: dict[tuple[int, int, str], Cell] = {}
    for user, assignment, submission_id, submitted_at, job_id, penalty, late, slug, raw in rows:
        raw = round(raw or 0.0, 6)
        if penalty:
            score = round(raw * (1.0 - penalty / 100.0), 6)
        else:
            penalty, score = 0.0, raw
        cells[(user, assignment, slug)] = Cell(
            raw, penalty, score, submission_id, job_id, submitted_at, late or 0.0
        )
    return cells


def counted_code_submissions(
    db: Session,
    assignment: Assignment,
    users: Select[Any] | None = None,
    user_id: int | None = None,
) -> dict[int, str]:
    """Per student, the id of their counted notebook or .py submission (the one whose
    tagged cells answer the manual exercises)."""
    winners = _winners(
        {assignment.id: assignment.counting_policy or "last"}, users, user_id
    ).subquery("winners")
    rows = db.execute(
        select(winners.c.user_id, winners.c.submission_id).where(winners.c.file_group == CODE_GROUP)
    ).all()
    return {int(user): str(submission) for user, submission in rows}


def counted_submission_ids(db: Session, assignment: Assignment, user_id: int) -> set[str]:
    """The submissions of this student that count for at least one exercise."""
    cache: dict[tuple[int, int], set[str]] = db.info.setdefault("counted_submissions", {})
    key = (assignment.id, user_id)
    if key not in cache:
        cells = counted_cells(db, {assignment.id: assignment.counting_policy}, user_id=user_id)
        valid = {e.slug for e in assignment.exercises}
        cache[key] = {c.submission_id for (_, _, slug), c in cells.items() if slug in valid}
    return cache[key]


def build_gradebook(db: Session, course: Course, assignment: str | None = None) -> Gradebook:
    query = select(Assignment).where(Assignment.course_id == course.id)
    if assignment is not None:
        query = query.where(Assignment.slug == assignment)
    rows = db.scalars(query.order_by(Assignment.position, Assignment.slug)).all()
    if assignment is not None and not rows:
        raise UnknownAssignment(f"There is no assignment {assignment!r} in course {course.slug!r}.")
    columns = [
        AssignmentColumn(
            id=a.id,
            slug=a.slug,
            title=a.title,
            max_score=a.max_score,
            counting=a.counting_policy or "last",
            exercises=tuple(ExerciseColumn(e.slug, e.kind, e.max_score) for e in a.exercises),
        )
        for a in rows
    ]
    enrolled = select(Enrollment.user_id).where(
        Enrollment.course_id == course.id, Enrollment.role == "student"
    )
    students = [
        StudentRow(u.id, u.name, u.full_name, u.email)
        for u in db.execute(
            select(User.id, User.name, User.full_name, User.email)
            .where(User.id.in_(enrolled))
            .order_by(User.name)
        ).all()
    ]
    from api.services.manual.carry import carry_over

    for a in rows:  # grades carried to resubmitted answers before they are summed
        carry_over(db, a, users=enrolled)
    book = Gradebook(course.slug, course.title, columns, students)
    book.cells = counted_cells(db, {a.id: a.counting for a in columns}, users=enrolled)
    return book


# -- CSV ------------------------------------------------------------------------------


def number(value: float | None) -> str:
    """A score as CSV text: no float noise, no needless decimals (4.5, 3, 0.333333)."""
    if value is None:
        return ""
    if value == 0:
        return "0"
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def wide_rows(book: Gradebook) -> Iterable[list[str]]:
    header = ["student"]
    for a in book.assignments:
        header.append(a.slug)
        header.extend(f"{a.slug}/{e.slug}" for e in a.exercises)
    yield header
    for s in book.students:
        row = [s.name]
        for a in book.assignments:
            total, per_exercise = book.scores(s, a)
            row.append(number(total))
            row.extend(map(number, per_exercise))
        yield row


LONG_COLUMNS = [
    "student",
    "assignment",
    "exercise",
    "max_score",
    "raw_score",
    "penalty_percent",
    "score",
    "late_seconds",
    "submission_id",
    "submitted_at",
    "counting",
]


def long_rows(book: Gradebook) -> Iterable[list[str]]:
    yield LONG_COLUMNS
    for s in book.students:
        for a in book.assignments:
            for e in a.exercises:
                cell = book.cells.get((s.id, a.id, e.slug))
                if cell is None:
                    yield [
                        s.name,
                        a.slug,
                        e.slug,
                        number(e.max_score),
                        "",
                        "",
                        "0",
                        "",
                        "",
                        "",
                        a.counting,
                    ]
                    continue
                yield [
                    s.name,
                    a.slug,
                    e.slug,
                    number(e.max_score),
                    number(cell.raw),
                    number(cell.penalty_percent),
                    number(cell.score),
                    number(cell.late_seconds),
                    cell.submission_id,
                    cell.submitted_at.isoformat(),
                    a.counting,
                ]


CANVAS_FIXED = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


def canvas_rows(book: Gradebook) -> Iterable[list[str]]:
    """Canvas's gradebook import layout: the student columns it matches on, then one
    column per assignment (its total), and a 'Points Possible' row under the header."""
    yield CANVAS_FIXED + [f"{a.title} ({a.slug})" for a in book.assignments]
    yield ["Points Possible", "", "", "", ""] + [number(a.max_score) for a in book.assignments]
    for s in book.students:
        yield [s.full_name or s.name, "", s.name, s.email, book.course_slug] + [
            number(book.scores(s, a)[0]) for a in book.assignments
        ]


def check_options(fmt: str, layout: str) -> None:
    if fmt not in FORMATS:
        raise GradebookError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    if layout not in LAYOUTS:
        raise GradebookError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}.")
    if layout == "canvas" and fmt != "wide":
        raise GradebookError(
            "The canvas layout has one row per student; it cannot be combined with format=long."
        )


def render_csv(book: Gradebook, fmt: str = "wide", layout: str = "default") -> str:
    check_options(fmt, layout)
    rows = (
        canvas_rows(book)
        if layout == "canvas"
        else (long_rows(book) if fmt == "long" else wide_rows(book))
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(rows)
    return out.getvalue()


def gradebook_csv(
    db: Session,
    course: Course,
    fmt: str = "wide",
    layout: str = "default",
    assignment: str | None = None,
) -> str:
    check_options(fmt, layout)
    return render_csv(build_gradebook(db, course, assignment), fmt, layout)


def gradebook_download(
    db: Session,
    course: Course,
    fmt: str = "wide",
    layout: str = "default",
    assignment: str | None = None,
) -> tuple[str, str]:
    """The CSV text and its file name, for the JSON API and the gradebook page."""
    text = gradebook_csv(db, course, fmt, layout, assignment)
    name = course.slug + (f"-{assignment}" if assignment else "")
    name += "-canvas" if layout == "canvas" else ("-long" if fmt == "long" else "")
    return text, f"{name}-gradebook.csv"
