"""The audit log: every staff action, written by one function in the caller's
transaction (it commits with the change it describes, or not at all)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core.models import AuditEvent


def record(
    db: Session,
    actor_id: int | None,
    course_id: int | None,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one audit event to the session (the caller commits)."""
    event = AuditEvent(
        actor_id=actor_id,
        course_id=course_id,
        action=action,
        target=target[:200],
        details=jsonable(details or {}),
    )
    db.add(event)
    return event


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
