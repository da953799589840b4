"""The one Settings object, read from the environment (and an optional .env file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Registry. Embedded default: SQLite under var/.
    database_url: str = f"sqlite:///{ROOT / 'var' / 'scalpel.db'}"
    # Broker. REDIS_URL wins over BROKER_URL; with neither, kombu's filesystem transport
    # (no server) under var/broker.
    redis_url: str | None = None
    broker_url: str | None = None
    broker_dir: Path = ROOT / "var" / "broker"
    # Longest a job may run; the Redis visibility timeout is set above it.
    job_time_limit_s: int = 12 * 3600
    compress_queue: str = "compress"

    # Storage and data.
    storage_dir: Path = ROOT / "var" / "artifacts"
    work_dir: Path = ROOT / "var" / "work"
    data_dir: Path = ROOT.parent / "shared" / "data"

    # Worker.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: int = Field(default=0, ge=0)  # 0: torch's default

    # Uploads.
    max_model_upload_bytes: int = 2 * 1024**3
    max_dataset_upload_bytes: int = 512 * 1024**2
    max_uncompressed_model_bytes: int = 4 * 1024**3
    max_archive_members: int = 256

    # API.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    default_page_size: int = 50
    max_page_size: int = 200
    # Requests admitted at once per API process (the rest wait without holding a thread or a
    # database connection); keep it at or below the database pool (10 + 20 overflow).
    max_inflight_requests: int = Field(default=24, ge=1, le=30)

    # Reliability (no job lost). A running job's worker writes heartbeat_at every
    # heartbeat_interval_s (0: off); the reaper, every reaper_interval_s inside each worker
    # process (0: off) and on `python -m app reap`, requeues a running job whose heartbeat is
    # older than heartbeat_stale_s (or fails it, worker_lost, after max_attempts starts), and
    # publishes queued jobs never handed to the broker (left dispatch_grace_s for the API's own
    # after-commit publish) or handed over more than dispatch_stale_s ago and still queued.
    heartbeat_interval_s: float = Field(default=10.0, ge=0)
    heartbeat_stale_s: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    reaper_interval_s: float = Field(default=30.0, ge=0)
    dispatch_grace_s: float = Field(default=10.0, ge=0)
    dispatch_stale_s: float = Field(default=6 * 3600.0, gt=0)

    @property
    def effective_broker_url(self) -> str:
        if self.redis_url:
            return self.redis_url
        if self.broker_url:
            return self.broker_url
        return "filesystem://"

    @property
    def uses_filesystem_broker(self) -> bool:
        return self.effective_broker_url.startswith("filesystem://")


@lru_cache
def get_settings() -> Settings:
    return Settings()
