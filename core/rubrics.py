"""Rubrics in the database: seeded from assignment.toml, replaced by staff, and the
rescoring of the grades given with them. Shared by the course import (core/course_sync.py)
and the manual grading service (api/services/manual/)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Exercise, utcnow
from core.rubric_models import ManualGrade, Rubric, RubricItem
from graders.rubric import RubricItemSpec, RubricSpec, clamp_score


def rubric_of(db: Session, exercise: Exercise) -> Rubric:
    """The exercise's rubric row; one with no items (floor 0, ceiling the exercise's
    points) if the course declared none."""
    row = db.get(Rubric, exercise.id)
    if row is None:
        row = Rubric(
            exercise_id=exercise.id, floor=0.0, ceiling=exercise.max_score, source_sha256=""
        )
        db.add(row)
        db.flush()
    return row


def items_of(db: Session, exercise_id: int) -> list[RubricItem]:
    return list(
        db.scalars(
            select(RubricItem)
            .where(RubricItem.exercise_id == exercise_id)
            .order_by(RubricItem.position, RubricItem.id)
        )
    )


def score_of(grade: ManualGrade, points: dict[str, float], rubric: Rubric) -> float:
    """A grade's score under the current rubric (items no longer in it count nothing)."""
    return clamp_score(
        (points[i] for i in grade.applied if i in points),
        grade.adjustment,
        rubric.floor,
        rubric.ceiling,
    )


def replace_items(
    db: Session, exercise: Exercise, items: Sequence[RubricItemSpec]
) -> tuple[list[str], int]:
    """Make the rubric's items these (already validated: graders.rubric.check_items).

    Returns the ids of the items that changed (points changed, added or removed) and the
    number of grades rescored: every grade that applied a changed item gets its score
    recomputed, and a removed item is taken out of the grades that applied it.
    """
    rubric = rubric_of(db, exercise)
    old = {i.slug: i for i in items_of(db, exercise.id)}
    new_points = {i.id: float(i.points) for i in items}
    changed = sorted(
        {s for s in old if s not in new_points or old[s].points != new_points[s]}
        | {s for s in new_points if s not in old}
    )
    for slug, stale in old.items():
        if slug not in new_points:
            db.delete(stale)
    db.flush()
    for position, item in enumerate(items):
        row = old.get(item.id) or RubricItem(exercise_id=exercise.id, slug=item.id)
        if row.id is None:
            db.add(row)
        row.position, row.points, row.description = position, float(item.points), item.description
    db.flush()
    return changed, rescore(db, exercise, rubric, new_points, set(changed))


def rescore(
    db: Session,
    exercise: Exercise,
    rubric: Rubric,
    points: dict[str, float],
    changed: set[str] | None = None,
) -> int:
    """Recompute the scores of the exercise's grades (those applying an item of `changed`,
    or all when None); returns how many scores changed."""
    rescored = 0
    grades = db.scalars(select(ManualGrade).where(ManualGrade.exercise_id == exercise.id))
    for grade in grades:
        applied = [str(i) for i in grade.applied]
        if changed is not None and not changed & set(applied):
            continue
        kept = [i for i in applied if i in points]
        if kept != applied:
            grade.applied = kept
        score = score_of(grade, points, rubric)
        if score != grade.score:
            grade.score = score
            rescored += 1
    db.flush()
    return rescored


def sync_rubric(db: Session, exercise: Exercise, spec: RubricSpec | None) -> None:
    """Seed the rubric from assignment.toml, or follow the toml's changes while no one
    has edited the rubric through the API (staff edits win over the folder)."""
    if spec is None:
        return
    rubric = db.get(Rubric, exercise.id)
    if rubric is not None and (rubric.edited_by is not None or rubric.source_sha256 == spec.sha256):
        return
    if rubric is None:
        rubric = Rubric(
            exercise_id=exercise.id,
            floor=spec.floor,
            ceiling=spec.ceiling,
            source_sha256=spec.sha256,
        )
        db.add(rubric)
    rubric.floor, rubric.ceiling, rubric.source_sha256 = spec.floor, spec.ceiling, spec.sha256
    db.flush()
    replace_items(db, exercise, spec.items)
    # Bounds may have moved too: every grade is rescored under them.
    rescore(db, exercise, rubric, {i.id: i.points for i in spec.items})


def mark_edited(rubric: Rubric, user_id: int) -> None:
    rubric.edited_by, rubric.edited_at = user_id, utcnow()
