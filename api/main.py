"""The FastAPI application: routers, error format, and the sweeper's lifetime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError

from api import metrics, pages
from api.inflight import InFlightLimit
from api.routers import courses, gradebook, health, leaderboard, regrades, staff, submissions
from api.sweeper import Sweeper
from core.logs import setup_logging

log = logging.getLogger("autograder.api")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    sweeper = Sweeper()
    if app.state.run_sweeper:
        sweeper.start()
    yield
    sweeper.stop()


def _validation_sentence(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return "The request is not valid: " + "; ".join(parts) + "."


def create_app(run_sweeper: bool = True) -> FastAPI:
    setup_logging("api")
    app = FastAPI(title="Deep Learning in Practice autograder", version="0.1.0",
                  lifespan=lifespan)
    app.state.run_sweeper = run_sweeper

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_sentence(exc)}, status_code=422)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def database_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database error: %s", exc)
        return JSONResponse(
            {"detail": "The database is not reachable right now; nothing was changed. "
                       "Please try again in a minute."},
            status_code=503, headers={"Retry-After": "10"},
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    for module in (health, courses, submissions, regrades, leaderboard, staff, gradebook, pages):
        app.include_router(module.router)
    metrics.install(app)
    app.add_middleware(InFlightLimit)  # see api/inflight.py: no pool deadlock
    return app
