"""The publication request: an uploaded assignment folder waiting for, or done with, its
self-check on a worker. On core.models.Base (core.models imports this module), so
migrations and create_all see it (migration 0005).

status: queued -> running (a worker took it) -> passed | failed | error; the API then
moves passed -> published, or queued/running -> abandoned when it stops waiting. Each
move is a conditional UPDATE, so a worker that finishes after the API gave up can never
publish anything.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.models import Base, new_id, utcnow

PUBLICATION_STATUSES = ("queued", "running", "passed", "failed", "error", "published", "abandoned")


class Publication(Base):
    __tablename__ = "publications"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    slug: Mapped[str] = mapped_column(String(64))
    #: graders.course.folder_version of the uploaded folder, and its bundle (a blob).
    version: Mapped[str] = mapped_column(String(64))
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    worker_host: Mapped[str | None] = mapped_column(String(255), default=None)
    #: The self-check's rows (graders.selfcheck_report.CheckRow as JSON).
    report: Mapped[list[Any] | None] = mapped_column(default=None)
    #: Why it failed or could not run, in a sentence.
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
