"""The Celery task is a thin shell: registered by name, acks late, calls run_job lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.queue import COMPRESS_TASK

ROOT = Path(__file__).resolve().parents[2]


def test_task_registered_with_long_job_options() -> None:
    from worker.celery_app import celery_app
    from worker.tasks import compress

    registered = celery_app.tasks[COMPRESS_TASK]  # a proxy, not the same object
    assert compress.name == registered.name == COMPRESS_TASK
    assert registered.acks_late is True and registered.reject_on_worker_lost is True


def test_task_calls_run_job(monkeypatch: pytest.MonkeyPatch) -> None:
    import worker.runner
    from worker.tasks import compress

    calls: list[str] = []

    def fake_run_job(job_id: str) -> str:
        calls.append(job_id)
        return "succeeded"

    monkeypatch.setattr(worker.runner, "run_job", fake_run_job)
    assert compress.run("abc") == "succeeded"
    assert calls == ["abc"]


def test_importing_the_worker_app_does_not_import_torch() -> None:
    code = (
        "import sys, worker.celery_app, worker.tasks; "
        "assert 'torch' not in sys.modules, 'torch imported in the prefork parent'; "
        "assert 'worker.runner' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
