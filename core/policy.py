"""Course policy arithmetic: deadlines with extensions, and late penalties."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Assignment, Extension

DAY = 86400.0


def effective_due(session: Session, assignment: Assignment, user_id: int) -> datetime | None:
    """The student's own deadline: their extension if they have one, else the assignment's."""
    extension = session.scalar(
        select(Extension).where(
            Extension.assignment_id == assignment.id, Extension.user_id == user_id
        )
    )
    return extension.due_at if extension else assignment.due_at


def late_seconds(submitted_at: datetime, due_at: datetime | None) -> float:
    if due_at is None:
        return 0.0
    return max(0.0, (submitted_at - due_at).total_seconds())


def penalty_percent(policy: dict[str, Any], seconds_late: float) -> float:
    """Percent of the raw score taken away. A part of a day counts as a whole day."""
    if seconds_late <= 0:
        return 0.0
    kind = policy.get("kind", "none")
    if kind == "none":
        return 0.0
    if kind == "zero":
        return 100.0
    if kind == "percent_per_day":
        days = math.ceil(seconds_late / DAY)
        per_day = float(policy.get("percent_per_day", 10))
        cap = float(policy.get("max_percent", 100))
        return min(days * per_day, cap, 100.0)
    raise ValueError(f"unknown late policy kind {kind!r}")


def apply_penalty(raw: float, percent: float) -> float:
    return round(raw * (1.0 - percent / 100.0), 6)


LATE_KINDS = ("none", "zero", "percent_per_day")
COUNTING_POLICIES = ("last", "best")


def normalize_late_policy(policy: dict[str, Any] | None) -> dict[str, Any]:
    """A late policy in its stored form, checked; ValueError (with a sentence) if wrong."""
    policy = dict(policy or {"kind": "none"})
    kind = policy.get("kind", "none")
    if kind not in LATE_KINDS:
        raise ValueError(f"late_policy.kind must be one of {', '.join(LATE_KINDS)}, not {kind!r}.")
    if kind != "percent_per_day":
        return {"kind": kind}
    out: dict[str, Any] = {"kind": kind}
    for key, default in (("percent_per_day", 10.0), ("max_percent", 100.0)):
        value = policy.get(key)
        value = default if value is None else value
        if isinstance(value, bool) or not isinstance(value, int | float) or not (0 <= value <= 100):
            raise ValueError(f"late_policy.{key} must be a number from 0 to 100.")
        out[key] = float(value)
    return out
