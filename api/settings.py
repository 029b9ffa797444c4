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


@lru_cache
def get_api_settings() -> ApiSettings:
    return ApiSettings()
