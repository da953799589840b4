"""The worker's Celery app: same configuration as the API's client, plus the task modules.

Start it with: celery -A worker.celery_app worker -Q compress -c 1
"""

from __future__ import annotations

from app.queue import make_celery
from app.settings import get_settings

celery_app = make_celery(get_settings(), "scalpel-worker")
celery_app.conf.update(include=["worker.tasks"], worker_concurrency=1)
app = celery_app
