"""Liveness and readiness: the database and the broker must answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from core import capacity
from core.db import get_engine, get_sessionmaker
from core.queue import broker_ok
from core.settings import get_settings

router = APIRouter()
HEALTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "database", "broker", "mode"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "database": {"type": "string"},
        "broker": {"type": "string"},
        "mode": {"type": "string"},
        "inflight": {"type": "object"},
        "workers": {"type": "integer"},
        "queues_without_consumers": {"type": "array", "items": {"type": "string"}},
    },
}


def _capacity() -> dict[str, Any] | None:
    """Live workers and the queues nobody consumes (None when the database is down)."""
    try:
        with get_sessionmaker()() as session:
            return capacity.capacity(session)
    except Exception:
        return None


def _database_ok() -> bool:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@router.get(
    "/healthz",
    response_class=JSONResponse,
    responses={
        200: {
            "description": "The database and the broker answer.",
            "content": {"application/json": {"schema": HEALTH_SCHEMA}},
        },
        503: {
            "description": "The database or the broker does not answer.",
            "content": {"application/json": {"schema": HEALTH_SCHEMA}},
        },
    },
)
async def healthz(request: Request) -> JSONResponse:
    """Also says how many requests hold a permit of the in-flight limit, and wait."""
    database = await run_in_threadpool(_database_ok)
    broker = await run_in_threadpool(broker_ok)
    settings = get_settings()
    body = {
        "status": "ok" if database and broker else "unavailable",
        "database": "ok" if database else "unreachable",
        "broker": "ok" if broker else "unreachable",
        "mode": "embedded" if settings.is_embedded_broker else "distributed",
    }
    live = await run_in_threadpool(_capacity) if database else None
    if live is not None:
        body["workers"] = live["workers"]
        body["queues_without_consumers"] = live["queues_without_consumers"]
    permits = getattr(request.app.state, "permits", None)
    if permits is not None:
        body["inflight"] = permits.snapshot()
    return JSONResponse(
        body, status_code=200 if database and broker else 503, headers={"Cache-Control": "no-store"}
    )
