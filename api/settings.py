"""Settings of the API process only (the shared ones are in core/settings.py).

Read from the same ``AUTOGRADER_`` environment variables.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOGRADER_", extra="ignore")

    #: Requests inside the application at once (0: from the database pool's size).
    inflight_limit: int = Field(default=0, ge=0)
    #: How long a request waits for its turn before a 503 with Retry-After.
    inflight_wait_seconds: float = Field(default=30.0, gt=0)
    #: An upload's body: at most this long without a byte arriving, and in all.
    upload_idle_seconds: float = Field(default=20.0, gt=0)
    upload_total_seconds: float = Field(default=300.0, gt=0)
    event_safety_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Event streams wake on a notification when a job's status changes; "
        "every this many seconds one query checks all open streams' jobs, so "
        "a lost notification delays a stream at most this long.",
    )
    # Publishing an assignment (POST /api/v1/courses/{course}/assignments).
    publish_max_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1,
        description="Largest archive (.zip or .tar.gz) an instructor may upload to publish "
        "an assignment; larger is refused with 413.",
    )
    publish_max_unpacked_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        description="Most bytes a published archive may unpack to (counted while unpacking, "
        "whatever its headers say); more is refused with 422.",
    )
    publish_max_entries: int = Field(
        default=2000,
        ge=1,
        description="Most entries (files and folders) a published archive may hold.",
    )
    publish_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long a publish waits for the self-check on a worker; past it the "
        "answer is 503 and nothing is published.",
    )


@lru_cache
def get_api_settings() -> ApiSettings:
    return ApiSettings()
