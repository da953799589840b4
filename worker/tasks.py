"""Celery tasks: thin shells over functions that tests call directly.

Heavy modules (torch, transformers, the pipeline) are imported inside the task body, so the
prefork parent never initialises torch (or its thread pools) before forking children.
"""

from __future__ import annotations

import logging
from typing import Any

from app.queue import COMPRESS_TASK
from worker.celery_app import celery_app

log = logging.getLogger(__name__)


@celery_app.task(  # type: ignore[untyped-decorator]
    name=COMPRESS_TASK, bind=True, acks_late=True, reject_on_worker_lost=True
)
def compress(self: Any, job_id: str) -> str:
    """Run one compression job; the job row records everything, the return value is only the
    final status (results are ignored by configuration)."""
    from worker.runner import run_job

    log.info(
        "task %s: job %s (delivery %s)", COMPRESS_TASK, job_id, getattr(self.request, "id", None)
    )
    return run_job(job_id)
