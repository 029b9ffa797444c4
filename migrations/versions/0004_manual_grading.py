"""manual grading: rubrics, rubric items, manual grades

A manual exercise (kind `manual`) is graded by staff with a rubric seeded from
assignment.toml (`rubrics`, `rubric_items`); each grade (`manual_grades`) names the
applied items, an adjustment and a comment, and keeps the hash of the tagged cells it
graded so a later identical answer inherits it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 22:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rubrics",
        sa.Column("exercise_id", sa.Integer(), nullable=False),
        sa.Column("floor", sa.Float(), nullable=False),
        sa.Column("ceiling", sa.Float(), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("edited_by", sa.Integer(), nullable=True),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["edited_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["exercise_id"], ["exercises.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("exercise_id"),
    )
    op.create_table(
        "rubric_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exercise_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("points", sa.Float(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["exercise_id"], ["exercises.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("exercise_id", "slug"),
    )
    with op.batch_alter_table("rubric_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rubric_items_exercise_id"), ["exercise_id"], unique=False
        )
    op.create_table(
        "manual_grades",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.String(length=32), nullable=False),
        sa.Column("exercise_id", sa.Integer(), nullable=False),
        sa.Column("applied", sa.JSON(), nullable=False),
        sa.Column("adjustment", sa.Float(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("answer_sha256", sa.String(length=64), nullable=False),
        sa.Column("grader_id", sa.Integer(), nullable=True),
        sa.Column("graded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("carried_from", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["exercise_id"], ["exercises.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["grader_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("submission_id", "exercise_id"),
    )
    with op.batch_alter_table("manual_grades", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manual_grades_exercise_id"), ["exercise_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_manual_grades_submission_id"), ["submission_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("manual_grades", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manual_grades_submission_id"))
        batch_op.drop_index(batch_op.f("ix_manual_grades_exercise_id"))
    op.drop_table("manual_grades")
    with op.batch_alter_table("rubric_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rubric_items_exercise_id"))
    op.drop_table("rubric_items")
    op.drop_table("rubrics")
