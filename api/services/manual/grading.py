"""Grading manual exercises: the list to grade, one answer rendered with its grade so
far, and the grade a TA gives (rubric items, adjustment, comment)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas_manual import (
    AnswerOut,
    AppliedItem,
    GradingEntry,
    ManualGradeIn,
    ManualGradeOut,
    RubricItemIO,
)
from api.services.access import Membership, is_released
from api.services.gradebook import counted_code_submissions
from api.services.manual.answers import Answer, answer_of
from api.services.manual.carry import answer_hash, carry_over
from api.services.manual.render import render_answer
from api.services.manual.targets import (
    order_key,
    pseudonyms,
    staff_exercise,
    submission_exercise,
)
from core import audit
from core.blobs import BlobNotFound, get_blob_store
from core.errors import Forbidden, Unreadable
from core.models import Enrollment, Exercise, Submission, User, utcnow
from core.rubric_models import ManualGrade, RubricItem
from core.rubrics import items_of, rubric_of, score_of
from graders.intake_limits import IntakeError

HIDDEN_NOTE = (
    "Graded by the course's staff; the grade is shown once the assignment's feedback is released."
)


def grading_list(
    db: Session, member: Membership, assignment: str, exercise: str, anonymous: bool = False
) -> list[GradingEntry]:
    """Each enrolled student's counted submission, in the grader's own stable order."""
    target, manual = staff_exercise(db, member, assignment, exercise)
    students = select(Enrollment.user_id).where(
        Enrollment.course_id == member.course.id, Enrollment.role == "student"
    )
    carry_over(db, target, users=students)
    counted = counted_code_submissions(db, target, users=students)
    grades = {
        g.submission_id: g
        for g in db.scalars(
            select(ManualGrade).where(
                ManualGrade.exercise_id == manual.id,
                ManualGrade.submission_id.in_(list(counted.values())),
            )
        )
    }
    names = {
        int(i): str(n)
        for i, n in db.execute(
            select(User.id, User.name).where(User.id.in_(list(counted)))
        ).tuples()
    }
    aliases = pseudonyms(db, member.course.id, set(counted)) if anonymous else {}
    entries = []
    for user_id, submission_id in counted.items():
        grade = grades.get(submission_id)
        graded = grade is not None and not grade.needs_review
        entries.append(
            GradingEntry(
                submission_id=submission_id,
                student=aliases[user_id] if anonymous and not graded else names[user_id],
                graded=graded,
                score=grade.score if grade is not None else None,
                needs_review=grade is not None and grade.needs_review,
            )
        )
    entries.sort(key=lambda e: order_key(member.user.id, manual.id, e.submission_id))
    return entries


def read_answer(submission: Submission, slug: str) -> Answer:
    """The submission's tagged cells; a file that cannot be read is an empty answer
    saying why (the grader still sees the page)."""
    try:
        return answer_of(get_blob_store().read(submission.sha256), submission.file_kind, slug)
    except IntakeError as exc:
        return Answer((), note=f"The answer cannot be shown: {exc}")
    except BlobNotFound:
        return Answer((), note="The submitted file is missing from the service's storage.")


def grade_out(
    db: Session, grade: ManualGrade, exercise: Exercise, items: list[RubricItem]
) -> ManualGradeOut:
    by_id = {i.slug: i for i in items}
    grader = db.get(User, grade.grader_id) if grade.grader_id else None
    return ManualGradeOut(
        submission_id=grade.submission_id,
        exercise=exercise.slug,
        score=grade.score,
        max_score=exercise.max_score,
        rubric=[str(i) for i in grade.applied],
        applied=[
            AppliedItem(id=i, points=by_id[i].points, description=by_id[i].description)
            for i in map(str, grade.applied)
            if i in by_id
        ],
        adjustment=grade.adjustment,
        comment=grade.comment,
        grader=grader.name if grader else None,
        graded_at=grade.graded_at,
        needs_review=grade.needs_review,
        carried_from=grade.carried_from,
    )


def answer_view(
    db: Session, user: User, submission_id: str, exercise: str, anonymous: bool = False
) -> AnswerOut:
    """The answer rendered as sanitised HTML, with the rubric and the grade so far.

    Staff see everything; the submission's owner sees their answer, and the rubric and
    grade only once the assignment's feedback is released.
    """
    submission, member, manual = submission_exercise(db, user, submission_id, exercise)
    assignment = submission.assignment
    if member.is_staff:
        carry_over(db, assignment, user_id=submission.user_id)
    shown = member.is_staff or is_released(assignment)
    rendered = render_answer(read_answer(submission, manual.slug), manual.slug)
    rubric = rubric_of(db, manual)
    items = items_of(db, manual.id)
    grade = db.scalar(
        select(ManualGrade).where(
            ManualGrade.submission_id == submission.id, ManualGrade.exercise_id == manual.id
        )
    )
    student: str | None = submission.user.name
    if anonymous and member.is_staff and (grade is None or grade.needs_review):
        student = pseudonyms(db, assignment.course_id, {submission.user_id})[submission.user_id]
    return AnswerOut(
        submission_id=submission.id,
        course=assignment.course.slug,
        assignment=assignment.slug,
        exercise=manual.slug,
        student=student,
        html=rendered.html,
        cells=rendered.cells,
        cells_left_out=rendered.cells_left_out,
        max_score=manual.max_score,
        rubric=[RubricItemIO(id=i.slug, points=i.points, description=i.description) for i in items]
        if shown
        else [],
        floor=rubric.floor,
        ceiling=rubric.ceiling,
        grade=grade_out(db, grade, manual, items) if grade is not None and shown else None,
        note=None if shown else HIDDEN_NOTE,
    )


def put_grade(
    db: Session, user: User, submission_id: str, exercise: str, body: ManualGradeIn
) -> ManualGradeOut:
    """Grade the answer: score = clamp(sum of the applied items' points + adjustment,
    floor, ceiling). Replaces any earlier grade (a carried one too) and is audited."""
    submission, member, manual = submission_exercise(db, user, submission_id, exercise)
    if not member.is_staff:
        raise Forbidden("Only the course's TAs and instructors may grade answers.")
    rubric = rubric_of(db, manual)
    items = items_of(db, manual.id)
    points = {i.slug: i.points for i in items}
    applied = list(dict.fromkeys(body.rubric))
    unknown = [i for i in applied if i not in points]
    if unknown:
        raise Unreadable(
            f"Rubric item {unknown[0][:64]!r} is not in the rubric of "
            f"{manual.slug}; its items are {', '.join(points) or 'none'}."
        )
    grade = db.scalar(
        select(ManualGrade).where(
            ManualGrade.submission_id == submission.id, ManualGrade.exercise_id == manual.id
        )
    )
    before = grade.score if grade is not None else None
    if grade is None:
        grade = ManualGrade(submission_id=submission.id, exercise_id=manual.id, score=0.0)
        db.add(grade)
    grade.applied, grade.adjustment, grade.comment = applied, body.adjustment, body.comment
    grade.score = score_of(grade, points, rubric)
    grade.answer_sha256 = answer_hash(submission, manual.slug)
    grade.grader_id, grade.graded_at = user.id, utcnow()
    grade.needs_review, grade.carried_from = False, None
    audit.record(
        db,
        user.id,
        submission.assignment.course_id,
        "manual.grade",
        f"{submission.id}/{manual.slug}",
        {
            "student": submission.user.name,
            "assignment": submission.assignment.slug,
            "rubric": applied,
            "adjustment": body.adjustment,
            "score": grade.score,
            "score_before": before,
        },
    )
    db.commit()
    return grade_out(db, grade, manual, items)
