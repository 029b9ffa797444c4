"""Every setting of the service, in one place.

Read from environment variables prefixed ``AUTOGRADER_``. The defaults describe the
embedded mode: everything under ``AUTOGRADER_DATA_DIR`` (``./var``), SQLite, and a
filesystem broker, so two instances with two data dirs never see each other.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOGRADER_", extra="ignore")

    data_dir: Path = Path("./var")
    database_url: str | None = None
    broker_url: str | None = None
    blob_dir: Path | None = None
    course_dir: Path = PROJECT_ROOT / "reference"

    max_upload_bytes: int = 20 * 1024 * 1024

    # Where blobs (uploads, course bundles) live: "folder" (under blob_dir), "database"
    # (chunks in the service's database; "postgres" is the same), "s3" (an S3-compatible
    # bucket), or "auto": "database" when the database is PostgreSQL, else "folder".
    blob_backend: str = "auto"
    # No blob larger than this is ever stored, whatever the backend.
    blob_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    # S3-compatible storage (blob_backend = "s3"); credentials come from the usual
    # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables.
    s3_bucket: str = "autograder"
    s3_prefix: str = "blobs/"
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    # A worker's local copies of blobs and unpacked course bundles (default
    # <data_dir>/cache), evicted least recently used first beyond cache_max_bytes.
    cache_dir: Path | None = None
    cache_max_bytes: int = Field(default=2 * 1024 * 1024 * 1024, ge=0)
    # How long a running job may go without a heartbeat before the sweeper re-queues it.
    lease_seconds: float = 60.0
    # How long a queued job may wait unclaimed before the sweeper sends it again.
    resend_after_seconds: float = 30.0
    sweep_interval_seconds: float = 5.0
    max_attempts: int = 3

    # Sandbox limits (per grading job); an exercise may ask for more within these caps.
    sandbox_cell_timeout: float = 30.0
    sandbox_call_timeout: float = 10.0
    sandbox_job_timeout: float = 120.0
    sandbox_memory_mb: int = 2048
    # "auto": use the strongest isolation this host allows; "none": plain child process.
    sandbox_isolation: str = "auto"

    # Jobs whose exercises ask for a GPU go to `gpu_queue` while a worker consuming it
    # is alive; when none is, they are graded on the CPU (`cpu` queue, with a note) if
    # this is true, else they wait for a GPU worker (and the submission says so).
    gpu_fallback_to_cpu: bool = True
    # The queue that jobs with GPU exercises go to when a GPU worker is alive.
    gpu_queue: str = "gpu"
    worker_slots: int = Field(default=1, ge=1)
    api_processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Processes of `autograder serve` sharing its port (uvicorn workers), "
        "each with its own connection pool, sweeper and event listener; more "
        "than one when one process's CPU limits the uploads per second.",
    )
    # Each worker announces the queues it consumes every worker_heartbeat_seconds; one
    # not heard of for worker_expiry_seconds is taken for gone (routing, the sweeper).
    worker_heartbeat_seconds: float = Field(default=5.0, gt=0)
    worker_expiry_seconds: float = Field(default=20.0, gt=0)

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'autograder.db'}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def broker_folder(self) -> Path:
        return self.resolved_data_dir / "broker"

    @property
    def resolved_blob_dir(self) -> Path:
        return (self.blob_dir or self.resolved_data_dir / "blobs").resolve()

    @property
    def resolved_cache_dir(self) -> Path:
        return (self.cache_dir or self.resolved_data_dir / "cache").resolve()

    @property
    def resolved_blob_backend(self) -> str:
        backend = self.blob_backend.strip().lower()
        if backend == "postgres":
            return "database"
        if backend == "auto":
            return "database" if self.resolved_database_url.startswith("postgresql") else "folder"
        if backend not in ("folder", "database", "s3"):
            raise ValueError(
                f"AUTOGRADER_BLOB_BACKEND={self.blob_backend!r}: expected auto, "
                "folder, database (postgres) or s3"
            )
        return backend

    @property
    def is_embedded_broker(self) -> bool:
        return self.resolved_broker_url.startswith("filesystem://")


@lru_cache
def get_settings() -> Settings:
    return Settings()
