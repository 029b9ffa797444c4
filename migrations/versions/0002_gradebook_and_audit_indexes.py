"""gradebook and audit indexes

The gradebook sums each counted job's test points per exercise: an index on
test_results (job_id, exercise_slug, score) answers that from the index alone and
replaces the index on job_id (its prefix). The audit log is read per course.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 23:56:06.776877
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_course_id", ["course_id", "id"], unique=False)

    with op.batch_alter_table("test_results", schema=None) as batch_op:
        batch_op.create_index(
            "ix_test_results_job_exercise", ["job_id", "exercise_slug", "score"], unique=False
        )
        batch_op.drop_index(batch_op.f("ix_test_results_job_id"))


def downgrade() -> None:
    with op.batch_alter_table("test_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_test_results_job_id"), ["job_id"], unique=False)
        batch_op.drop_index("ix_test_results_job_exercise")

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_course_id")
