"""The manual exercises' part of a submission's results (GET /submissions/{id}).

Staff see each manual grade; the submission's owner sees it once the assignment's
feedback is released (Assignment.released_at), before that a null score and a note.
An exercise's `tests` are the applied rubric items, one entry each (outcome "applied",
score the item's points); the adjustment and comment are under `manual`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas import ExerciseResultOut, TestOut
from api.schemas_manual import ManualFeedbackOut
from api.services.access import is_released
from api.services.manual.carry import carry_over, manual_exercises
from core.models import Submission
from core.rubric_models import ManualGrade
from core.rubrics import items_of
from graders.intake import CODE_KINDS

NOT_GRADED = "Not graded yet: the course's staff grade this answer by hand."
HIDDEN = "Graded by the course's staff; shown once the assignment's feedback is released."
NEEDS_REVIEW = (
    "The answer changed since it was graded: the earlier grade stands until the staff review it."
)


@dataclass
class ManualResults:
    exercises: list[ExerciseResultOut] = field(default_factory=list)
    #: Sum of the manual scores shown to this viewer (before any late penalty).
    points: float = 0.0
    #: Sum of the manual exercises' points (what they add to the submission's maximum).
    max_score: float = 0.0


def manual_results(db: Session, submission: Submission, viewer_is_staff: bool) -> ManualResults:
    assignment = submission.assignment
    exercises = manual_exercises(assignment)
    if not exercises or submission.file_kind not in CODE_KINDS:
        return ManualResults()
    grades = {
        g.exercise_id: g
        for g in db.scalars(select(ManualGrade).where(ManualGrade.submission_id == submission.id))
    }
    if len(grades) < len(exercises):
        cache: set[tuple[int, int]] = db.info.setdefault("manual_carried", set())
        if (assignment.id, submission.user_id) not in cache:
            cache.add((assignment.id, submission.user_id))
            if carry_over(db, assignment, user_id=submission.user_id):
                grades = {
                    g.exercise_id: g
                    for g in db.scalars(
                        select(ManualGrade).where(ManualGrade.submission_id == submission.id)
                    )
                }
    shown = viewer_is_staff or is_released(assignment)
    results = ManualResults(max_score=round(sum(e.max_score for e in exercises), 6))
    for exercise in exercises:
        grade = grades.get(exercise.id)
        if grade is None or not shown:
            results.exercises.append(
                ExerciseResultOut(
                    slug=exercise.slug,
                    score=None,
                    max_score=exercise.max_score,
                    tests=[],
                    manual=ManualFeedbackOut(
                        graded=grade is not None, note=NOT_GRADED if grade is None else HIDDEN
                    ),
                )
            )
            continue
        items = {i.slug: i for i in items_of(db, exercise.id)}
        tests = [
            TestOut(
                name=f"{i}: {items[i].description}"[:200],
                outcome="applied",
                score=items[i].points,
                max_score=max(items[i].points, 0.0),
                feedback="",
                visibility="visible",
            )
            for i in map(str, grade.applied)
            if i in items
        ]
        results.exercises.append(
            ExerciseResultOut(
                slug=exercise.slug,
                score=grade.score,
                max_score=exercise.max_score,
                tests=tests,
                manual=ManualFeedbackOut(
                    graded=True,
                    adjustment=grade.adjustment,
                    comment=grade.comment,
                    needs_review=grade.needs_review,
                    note=NEEDS_REVIEW if grade.needs_review else None,
                ),
            )
        )
        results.points += grade.score
    results.points = round(results.points, 6)
    return results
