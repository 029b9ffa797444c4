"""The FastAPI application: routers, error answers, the in-flight limit, the sweeper."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors, metrics, ui
from api.inflight import InFlightLimit, Permits
from api.multipart import CloseUnreadBodies
from api.routers import (
    courses,
    gradebook,
    health,
    leaderboard,
    manual_grading,
    publishing,
    regrades,
    staff,
    submissions,
)
from api.services import events
from api.settings import get_api_settings
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
    await events.stop_hub()  # the event streams' listener: its connection or socket


def create_app(run_sweeper: bool = True) -> FastAPI:
    setup_logging("api")
    settings = get_api_settings()
    app = FastAPI(
        title="Deep Learning in Practice autograder",
        version="0.1.0",
        description="The HTTP contract of docs/API.md. Every error answers "
        '`{"detail": "<a sentence>"}`.',
        lifespan=lifespan,
    )
    app.state.run_sweeper = run_sweeper
    app.state.open_paths = {"/healthz"}
    errors.install(app)
    for module in (
        health,
        courses,
        submissions,
        regrades,
        leaderboard,
        staff,
        gradebook,
        publishing,
        manual_grading,
    ):
        app.include_router(module.router)
    app.include_router(ui.router)
    metrics.install(app)
    app.state.permits = Permits(settings.inflight_limit or None, settings.inflight_wait_seconds)
    app.add_middleware(InFlightLimit, permits=app.state.permits)  # api/inflight.py
    app.add_middleware(CloseUnreadBodies)  # outermost: covers the limit's 503 too
    return app
