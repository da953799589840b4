"""Per-step metrics (e.g. accuracy after each pruning step) become job events, so the SSE
stream carries them, without touching the job's own metrics."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.db.models import JobEvent
from tests.factories.jobs import make_job
from tests.factories.tenants import default_tenant_id
from worker.job_store import JobStore
from worker.pipelines.progress import MemoryReporter
from worker.runner import DbReporter


def test_db_reporter_writes_a_metrics_event(db_session: Session) -> None:
    job = make_job(db_session, default_tenant_id(db_session))
    store = JobStore(
        lambda: Session(bind=db_session.bind, join_transaction_mode="create_savepoint")
    )
    reporter = DbReporter(store, job.id)
    reporter.current = "recover"
    reporter.step_metrics({"step": 40, "sparsity": 0.5, "dev_accuracy": 0.81})
    db_session.expire_all()
    event = db_session.query(JobEvent).filter_by(job_id=job.id, kind="metrics").one()
    assert event.stage == "recover"
    assert event.data == {"step": 40, "sparsity": 0.5, "dev_accuracy": 0.81}
    db_session.refresh(job)
    assert job.metrics == {}


def test_memory_reporter_keeps_step_metrics() -> None:
    reporter = MemoryReporter()
    reporter.step_metrics({"step": 1})
    assert reporter.step_log == [{"step": 1}]
