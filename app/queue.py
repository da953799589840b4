"""Celery configuration shared by the API (a client that enqueues by task name) and the worker."""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any

from celery import Celery

from app.settings import Settings, get_settings

COMPRESS_TASK = "scalpel.compress"


def celery_config(settings: Settings) -> dict[str, Any]:
    broker = settings.effective_broker_url
    transport_options: dict[str, Any] = {}
    if settings.uses_filesystem_broker:
        folder = settings.broker_dir / "queue"
        processed = settings.broker_dir / "processed"
        control = settings.broker_dir / "control"
        for d in (folder, processed, control):
            d.mkdir(parents=True, exist_ok=True)
        transport_options = {
            "control_folder": str(control),
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "processed_folder": str(processed),
            "store_processed": False,
        }
    elif broker.startswith(("redis://", "rediss://")):
        # Longer than the longest job, or a running job would be redelivered.
        transport_options = {"visibility_timeout": settings.job_time_limit_s + 3600}
    return {
        "broker_url": broker,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,  # the job row is the source of truth
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": settings.compress_queue,
        "task_routes": {COMPRESS_TASK: {"queue": settings.compress_queue}},
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_time_limit": settings.job_time_limit_s,
        "worker_hijack_root_logger": False,
    }


def make_celery(settings: Settings, name: str = "scalpel") -> Celery:
    app = Celery(name)
    app.conf.update(celery_config(settings))
    return app


@lru_cache
def get_celery() -> Celery:
    return make_celery(get_settings(), "scalpel-api")


def enqueue_compress(job_id: uuid.UUID) -> None:
    """Send only the job id; the worker re-reads the job row."""
    settings = get_settings()
    get_celery().send_task(COMPRESS_TASK, args=[str(job_id)], queue=settings.compress_queue)


def broker_reachable(timeout_s: float = 2.0) -> bool:
    try:
        with get_celery().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
        return True
    except Exception:
        return False
