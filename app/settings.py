"""The one Settings object, read from the environment (and an optional .env file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
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
    # The most memory (bytes) one job may take in a worker process: the whole job's estimated
    # peak (app.services.job_estimate) is checked against it at submission and at job start,
    # and the worker fails a job whose RSS goes over it (see "job estimates" below).
    worker_memory_budget_bytes: int = Field(default=8 * 1024**3, ge=1)

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
    # The API's public base URL (http(s), no query or fragment, may end in a path prefix):
    # webhook payloads then carry absolute links (artifacts_url); unset, the paths alone.
    public_base_url: str | None = None

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, value: str | None) -> str | None:
        """Blank is unset; the URL is kept without its trailing slash."""
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("PUBLIC_BASE_URL must be an http(s) URL with a host")
        if parts.query or parts.fragment or "?" in value or "#" in value:
            raise ValueError("PUBLIC_BASE_URL must not have a query or a fragment")
        if parts.username is not None or parts.password is not None:
            raise ValueError("PUBLIC_BASE_URL must not hold credentials")
        return value.strip().rstrip("/")

    # --- admission (slow clients, upload slots, liveness) ---
    # Uploads (POST /v1/models, /v1/datasets) admitted at once per API process, from their own
    # pool beside max_inflight_requests, so slow uploads can never starve status reads. Each
    # request slot, upload slot and key check may hold a database connection:
    # max_inflight_requests + max_inflight_uploads + max_key_checks must fit in the database
    # pool (checked below).
    # The database pool of an API process (app.db.session.make_engine: pool_size 10 +
    # max_overflow 20).
    db_pool_connections: ClassVar[int] = 30
    max_inflight_uploads: int = Field(default=4, ge=1, le=16)
    # Other requests with a body (JSON, at most 1 MiB) have it read before they take a slot,
    # at most this many at once, so a slow body never holds a request slot either.
    max_body_reads: int = Field(default=32, ge=1, le=1024)
    # API-key checks that miss the key cache, run at once (each a short query on its own
    # session, before the request takes a slot; an unauthenticated request never holds one).
    max_key_checks: int = Field(default=2, ge=1, le=8)
    # The longest a request waits for a slot or a key check before a 503 `overloaded`.
    admission_wait_s: float = Field(default=30.0, gt=0)
    # A request body that sends nothing for body_idle_timeout_s, or that averages under
    # body_min_rate_bytes_s once body_rate_grace_s have passed since it was first read (0: no
    # rate floor), ends with a 408 `request_timeout` and its connection is closed.
    body_idle_timeout_s: float = Field(default=15.0, gt=0)
    # 64 KiB/s (half a megabit): the average over the whole body, so also an overall deadline
    # of max(grace, length / rate): 9.1 h for a 2 GiB model, 16 s for a 1 MiB JSON body.
    body_min_rate_bytes_s: float = Field(default=64 * 1024.0, ge=0)
    body_rate_grace_s: float = Field(default=10.0, ge=0)
    # Upload slots, and body reads, one API key may hold at once (each, per API process, held
    # or waiting); one more is a 429 `too_many_uploads` / `too_many_body_reads` + Retry-After.
    admission_slots_per_key: int = Field(default=2, ge=1, le=64)
    # /healthz (liveness) answers 503 `not_live` once every request slot (or key-check lane)
    # is held, someone is waiting, and no slot has been freed for this long.
    liveness_stall_s: float = Field(default=60.0, gt=0)
    # `python -m app serve` (uvicorn): a connection whose request headers are not complete
    # this long after its first byte (or after it opened) is closed; at most
    # http_max_connections connections and requests at once (over it: 503; 0: no limit); the
    # largest request head (h11) in bytes.
    http_header_timeout_s: float = Field(default=10.0, gt=0)
    http_max_connections: int = Field(default=2048, ge=0)
    http_max_header_bytes: int = Field(default=16 * 1024, ge=1024)

    # --- upload parsing bounds ---
    # Data sets: the most columns a CSV/TSV header, or the distinct keys of all JSONL lines, may
    # have; more is a 422 naming the line, refused as it is read (MAX_DATASET_COLUMNS).
    max_dataset_columns: int = Field(default=256, ge=1, le=100_000)
    # Token-classification and question-answering uploads are read whole (CoNLL, SQuAD JSON):
    # about 6x the file in memory, up to 16x for hostile shapes (app.services.task_uploads),
    # so their cap is this, not max_dataset_upload_bytes. The full SQuAD v1.1 train set
    # (30.3 MB) needs it raised to 32 MiB or more (a check of about 0.5 GB at worst).
    max_whole_file_dataset_bytes: int = Field(default=16 * 1024**2, ge=1)

    # --- job estimates and the worker's budget ---
    # Training throughput (FLOP/s) behind a job's time estimate, checked against
    # job_time_limit_s at submission. Measured on this machine (2 vCPUs, torch 2.13 CPU):
    # MiniLM-L6 AdamW steps at batch 32 x length 128, 275.9 GFLOP a step by the estimate's
    # count, took 6.46 CPU-seconds each at one thread (0.155 steps per CPU-second; 9.5 s of
    # wall time under a load of 4-5 from other work): 4.3e10 is one core's worth.
    estimate_train_flops_per_s: float = Field(default=4.3e10, gt=0)
    # How often the worker samples its RSS while a job runs (0: no watchdog); over
    # worker_memory_budget_bytes the job fails with memory_budget_exceeded.
    memory_watchdog_interval_s: float = Field(default=1.0, ge=0)
    # Distillation keeps the frozen teacher's outputs of each training item (deterministic in
    # eval mode) while they fit in this many bytes per job, so later epochs and stages skip its
    # forward pass (0: never cache). SST-2 takes 0.5 MB, SQuAD at length 384 about 45 MB.
    teacher_cache_max_bytes: int = Field(default=512 * 1024**2, ge=0)

    # --- housekeeping (broker loss, orphans, event streams, metrics) ---
    # Broker loss: a queued job handed to Redis more than broker_loss_grace_s ago whose
    # message is neither in the queue nor taken by a worker (Redis restarted empty, flushed)
    # is published again on the reaper's next pass instead of after dispatch_stale_s.
    broker_loss_grace_s: float = Field(default=10.0, ge=0)
    # Orphans (app.services.sweeper, run by the reaper every sweep_interval_s (0: off) and on
    # every `python -m app reap`): store objects no model, data set or artifact row names,
    # upload temporaries under work_dir/uploads, and the checkpoints and scratch of jobs that
    # ended failed or canceled or were deleted, each once older than sweep_grace_s.
    sweep_interval_s: float = Field(default=3600.0, ge=0)
    sweep_grace_s: float = Field(default=6 * 3600.0, ge=60)
    # Artifact retention (app.services.retention, on the sweeper's passes): the artifacts of a
    # job that ended more than this many days ago have their files removed from the store and
    # are marked expired (listed with expired_at; a download is a 410 `artifact_expired`).
    # None (the default): kept for ever.
    artifact_retention_days: float | None = Field(default=None, gt=0, le=100 * 365)
    # Event streams (GET /v1/jobs/{id}/events as text/event-stream) one API key may hold open
    # at once in one API process; one more is a 429 `too_many_streams` with Retry-After.
    events_streams_per_key: int = Field(default=8, ge=1, le=1000)
    # /metrics counts every tenant's jobs. With metrics_token unset it needs an admin API key;
    # metrics_public=true serves it to anyone (logged as a warning at startup).
    metrics_public: bool = False

    @model_validator(mode="after")
    def _admission_fits_the_pool(self) -> Settings:
        """Admission section: every request slot, upload slot and key check may hold a
        database connection at once; more of them than the pool has connections deadlock."""
        holders = self.max_inflight_requests + self.max_inflight_uploads + self.max_key_checks
        if holders > self.db_pool_connections:
            raise ValueError(
                f"max_inflight_requests + max_inflight_uploads + max_key_checks = {holders}: "
                f"more than the {self.db_pool_connections} database connections "
                "(app.db.session) they may hold at once"
            )
        return self

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
