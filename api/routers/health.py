"""Liveness and readiness: the database and the broker must answer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from core.db import get_engine
from core.queue import broker_ok
from core.settings import get_settings

router = APIRouter()


def _database_ok() -> bool:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@router.get("/healthz")
async def healthz() -> JSONResponse:
    database = await run_in_threadpool(_database_ok)
    broker = await run_in_threadpool(broker_ok)
    settings = get_settings()
    body = {
        "status": "ok" if database and broker else "unavailable",
        "database": "ok" if database else "unreachable",
        "broker": "ok" if broker else "unreachable",
        "mode": "embedded" if settings.is_embedded_broker else "distributed",
    }
    return JSONResponse(body, status_code=200 if database and broker else 503)
