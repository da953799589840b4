"""The worker's Celery app: same configuration as the API's client, plus the task modules.

Start it with: celery -A worker.celery_app worker -Q compress -c 1
"""

from __future__ import annotations

from typing import Any

from celery.signals import setup_logging, worker_process_init

from app.queue import make_celery
from app.settings import get_settings

celery_app = make_celery(get_settings(), "scalpel-worker")
celery_app.conf.update(include=["worker.tasks"], worker_concurrency=1)
app = celery_app


def start_reaper(**_: Any) -> None:
    """Every worker process (each prefork child; the solo pool's one) reaps lost jobs and
    dispatches undispatched ones in the background, so no job waits for an operator."""
    from app.services.reaper import start_background_reaper
    from app.services.webhook_dispatch import start_background_dispatcher

    start_background_reaper()
    start_background_dispatcher()


def configure_worker_logging(**_: Any) -> None:
    """Replaces Celery's own logging setup: one format (log_format) for every line."""
    from app.logging import configure_logging

    configure_logging()


setup_logging.connect(configure_worker_logging)
worker_process_init.connect(start_reaper)
