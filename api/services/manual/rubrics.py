"""Reading and replacing a manual exercise's rubric through the API (staff): a
replacement is validated like assignment.toml's, rescores every grade that applied a
changed item, and is audited with the rubric before and after."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from api.schemas_manual import RubricItemIO
from api.services.access import Membership
from api.services.manual.targets import staff_exercise
from core import audit
from core.errors import Unreadable
from core.rubrics import items_of, mark_edited, replace_items, rubric_of
from graders.rubric import RubricError, RubricItemSpec, check_items


def rubric_items(
    db: Session, member: Membership, assignment: str, exercise: str
) -> list[RubricItemIO]:
    _, manual = staff_exercise(db, member, assignment, exercise)
    return [
        RubricItemIO(id=i.slug, points=i.points, description=i.description)
        for i in items_of(db, manual.id)
    ]


def replace_rubric(
    db: Session, member: Membership, assignment: str, exercise: str, items: Sequence[RubricItemIO]
) -> tuple[list[RubricItemIO], int]:
    """Make the rubric `items`; returns it and the number of grades whose score changed."""
    target, manual = staff_exercise(db, member, assignment, exercise)
    try:
        specs = check_items([RubricItemSpec(i.id, i.points, i.description) for i in items])
    except RubricError as exc:
        raise Unreadable(str(exc)) from None
    before = [[i.slug, i.points, i.description] for i in items_of(db, manual.id)]
    changed, rescored = replace_items(db, manual, specs)
    mark_edited(rubric_of(db, manual), member.user.id)
    audit.record(
        db,
        member.user.id,
        member.course.id,
        "rubric.replace",
        f"{target.slug}/{manual.slug}",
        {
            "before": before,
            "after": [[i.id, i.points, i.description] for i in specs],
            "changed": changed,
            "rescored": rescored,
        },
    )
    db.commit()
    return rubric_items(db, member, assignment, exercise), rescored
