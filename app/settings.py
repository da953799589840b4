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
    # Artifact backend: "local" (storage_dir) or an S3-compatible bucket (app.storage_s3);
    # with "s3", GET /v1/artifacts/{id} redirects to a URL presigned for s3_presign_expiry_s.
    storage_backend: Literal["local", "s3"] = "local"
    s3_endpoint_url: str | None = None
    s3_bucket: str = "scalpel-artifacts"
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_prefix: str = ""
    s3_presign_expiry_s: int = Field(default=900, ge=1, le=7 * 86400)
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
    # The most oBERT Fisher state (bytes) a job may need; a spec over it is refused at
    # submission (app.services.spec_limits). Matches worker OBertConfig.memory_budget_bytes.
    worker_memory_budget_bytes: int = Field(default=4 * 1024**3, ge=1)

    # API.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Idle HTTP keep-alive (uvicorn's default is 5 s, shorter than most clients' poll interval).
    http_keep_alive_s: int = Field(default=30, ge=1, le=600)
    default_page_size: int = 50
    max_page_size: int = 200
    # Requests admitted at once per API process (the rest wait without holding a thread or a
    # database connection); keep it at or below the database pool (10 + 20 overflow).
    max_inflight_requests: int = Field(default=24, ge=1, le=30)
    # How long an API process trusts an API key it has checked (0: check every request); a
    # revoked key is refused by every process within this many seconds.
    api_key_cache_s: float = Field(default=5.0, ge=0, le=300)
    # PostgreSQL only: job status reads are kept in memory until the job's row changes (a
    # trigger notifies every API process), or for this many seconds at most (0: no cache).
    job_cache_ttl_s: float = Field(default=30.0, ge=0, le=3600)

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

    # Operations. GET /v1/jobs/{id}/events with Accept: text/event-stream polls the registry
    # every events_poll_interval_s (a short session per poll), sends a comment every
    # events_heartbeat_s of silence and closes after events_stream_max_s (the client resumes
    # with Last-Event-ID). /metrics needs `Authorization: Bearer <metrics_token>` when set.
    # Logs: one JSON object a line ("json") or plain text.
    events_poll_interval_s: float = Field(default=1.0, gt=0)
    events_heartbeat_s: float = Field(default=15.0, gt=0)
    events_stream_max_s: float = Field(default=3600.0, gt=0)
    metrics_token: str | None = None
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"

    # Webhooks (app.services.webhooks). Each worker process (and `python -m app reap`) sends
    # due deliveries every webhook_dispatch_interval_s (0: off); a failed attempt is retried
    # with jittered exponential backoff (base, cap) up to webhook_max_attempts attempts or
    # webhook_max_age_s after the event. webhook_allow: address categories a webhook may
    # reach besides public ones (loopback, private, link_local). A rotated-out secret stays
    # valid webhook_secret_grace_s.
    webhook_dispatch_interval_s: float = Field(default=5.0, ge=0)
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_backoff_base_s: float = Field(default=2.0, gt=0)
    webhook_backoff_cap_s: float = Field(default=300.0, gt=0)
    webhook_max_age_s: float = Field(default=86400.0, gt=0)
    webhook_allow: list[Literal["loopback", "private", "link_local"]] = Field(default_factory=list)
    webhook_secret_grace_s: float = Field(default=86400.0, ge=0)

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
