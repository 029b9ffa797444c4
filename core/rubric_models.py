"""Manual grading's persistent state: each manual exercise's rubric and the grades staff
give answers with it. On core.models.Base, so migrations and create_all see them (core.db
imports this module next to core.models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models import Base, utcnow


class Rubric(Base):
    """A manual exercise's score bounds, and where its items came from.

    Items are seeded from assignment.toml; once staff edit them through the API
    (`edited_by` set) a later course import leaves them alone.
    """

    __tablename__ = "rubrics"
    exercise_id: Mapped[int] = mapped_column(
        ForeignKey("exercises.id", ondelete="CASCADE"), primary_key=True
    )
    floor: Mapped[float] = mapped_column(Float, default=0.0)
    ceiling: Mapped[float] = mapped_column(Float)
    # sha256 of the rubric as assignment.toml last declared it.
    source_sha256: Mapped[str] = mapped_column(String(64), default="")
    edited_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    edited_at: Mapped[datetime | None] = mapped_column(default=None)


class RubricItem(Base):
    __tablename__ = "rubric_items"
    __table_args__ = (UniqueConstraint("exercise_id", "slug"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    exercise_id: Mapped[int] = mapped_column(
        ForeignKey("exercises.id", ondelete="CASCADE"), index=True
    )
    # The item's id in the API and in assignment.toml.
    slug: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)
    points: Mapped[float] = mapped_column(Float)
    description: Mapped[str] = mapped_column(Text, default="")


class ManualGrade(Base):
    """A grader's verdict on one submission's answer to one manual exercise.

    The score is derived (clamped sum of the applied items' current points plus the
    adjustment) and stored so the gradebook sums it like test points; a rubric change
    rewrites it. `answer_sha256` is the hash of the tagged cells that were graded: a
    later submission with the same hash inherits the grade, one with another hash
    inherits it marked `needs_review`.
    """

    __tablename__ = "manual_grades"
    __table_args__ = (UniqueConstraint("submission_id", "exercise_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[str] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), index=True
    )
    exercise_id: Mapped[int] = mapped_column(
        ForeignKey("exercises.id", ondelete="CASCADE"), index=True
    )
    applied: Mapped[list[Any]] = mapped_column(default=list)
    adjustment: Mapped[float] = mapped_column(Float, default=0.0)
    comment: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[float] = mapped_column(Float)
    answer_sha256: Mapped[str] = mapped_column(String(64), default="")
    grader_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    graded_at: Mapped[datetime] = mapped_column(default=utcnow)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    # The submission whose grade this one was carried over from, if any.
    carried_from: Mapped[str | None] = mapped_column(String(32), default=None)
