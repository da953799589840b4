"""run_job end to end on the real PostgreSQL, with a tiny uploaded BERT and a tiny data set."""

from __future__ import annotations

import hashlib
import json
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from app.db.models import Artifact, Job, JobEvent, UploadedModel, WebhookDelivery
from app.settings import Settings
from app.storage import LocalStore
from tests.factories.tenants import default_tenant_id
from tests.factories.tiny_bert import archive, write_sst2_like, write_tiny_bert
from worker.job_store import advisory_key
from worker.runner import run_job


def make_files(tmp_path: Path) -> tuple[Settings, LocalStore, UploadedModel]:
    """Settings under tmp_path, a tiny sst2-like data set, and an uploaded tiny BERT row
    (not yet added to a session) whose archive is in the store."""
    settings = Settings(
        data_dir=tmp_path / "data",
        storage_dir=tmp_path / "store",
        work_dir=tmp_path / "work",
        device="cpu",
    )
    write_sst2_like(settings.data_dir, n_train=48, n_dev=16)
    store = LocalStore(settings.storage_dir)
    folder = write_tiny_bert(tmp_path / "upload")
    stored = store.put_file(archive(folder, tmp_path / "tiny.tar.gz", "tar.gz", prefix="tiny"))
    config = json.loads((folder / "config.json").read_text())
    model = UploadedModel(
        id=uuid.uuid4(),
        name="tiny",
        filename="tiny.tar.gz",
        archive_format="tar.gz",
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
        storage_key=stored.key,
        architecture="BertModel",
        num_labels=None,
        num_parameters=1,
        config=config,
    )
    return settings, store, model


@pytest.fixture
def env(tmp_path: Path, db_session: Session) -> dict[str, Any]:
    settings, store, model = make_files(tmp_path)
    model.tenant_id = default_tenant_id(db_session)
    db_session.add(model)
    db_session.flush()

    def factory() -> Session:
        return Session(bind=db_session.connection(), join_transaction_mode="create_savepoint")

    return {"settings": settings, "store": store, "model_id": model.id, "factory": factory}


def add_job(db: Session, spec: dict[str, Any], **fields: Any) -> uuid.UUID:
    values: dict[str, Any] = {
        "tenant_id": default_tenant_id(db),
        "status": "queued",
        "progress": 0.0,
        "metrics": {},
        "cancel_requested": False,
        "attempts": 0,
        **fields,
    }
    job = Job(id=uuid.uuid4(), spec=spec, **values)
    db.add(job)
    db.flush()
    return job.id


def spec(model_id: uuid.UUID, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": str(model_id),
        "dataset": {"name": "sst2", "max_length": 16},
        "pruning": {"method": "magnitude", "sparsity": 0.5},
        "quantization": {"method": "dynamic_int8"},
        "training": {
            "max_steps": 6,
            "recovery_max_steps": 4,
            "batch_size": 8,
            "learning_rate": 1e-3,
        },
    }
    body.update(over)
    return body


def run(env: dict[str, Any], job_id: uuid.UUID) -> str:
    return run_job(
        job_id,
        session_factory=env["factory"],
        settings=env["settings"],
        reporter_interval_s=0.0,
        latency_iters=(1, 1),
    )


def fresh(db: Session, job_id: uuid.UUID) -> Job:
    db.expire_all()
    return db.get(Job, job_id)  # type: ignore[return-value]


def test_job_succeeds_and_artifacts_match_report(
    env: dict[str, Any], db_session: Session, tmp_path: Path
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from app.schemas.job_spec import DatasetSpec
    from worker.compression import sparsity_of
    from worker.pipelines.architecture import prunable_targets
    from worker.pipelines.data import load_builtin_tsv
    from worker.pipelines.evaluate import evaluate
    from worker.pipelines.package import load_int8_dir

    job_id = add_job(db_session, spec(env["model_id"]))
    assert run(env, job_id) == "succeeded"
    job = fresh(db_session, job_id)
    assert job.status == "succeeded" and job.progress == 1.0 and job.stage == "package"
    assert job.attempts == 1 and job.worker_id and job.started_at and job.finished_at
    assert job.error_code is None

    events = db_session.scalars(
        select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
    ).all()
    stages = [e.stage for e in events if e.kind == "stage"]
    assert stages == [
        "load",
        "finetune_dense",
        "evaluate_dense",
        "prune",
        "recover",
        "quantize",
        "evaluate",
        "measure",
        "export",
        "package",
    ]
    progress = [e.progress for e in events if e.kind in ("stage", "progress")]
    assert progress == sorted(progress) and any(e.kind == "progress" for e in events)
    assert [e.status for e in events if e.kind == "status"] == ["running", "succeeded"]
    # each training stage's last step (6 fine-tuning, then 4 recovery steps)
    telemetry = [e for e in events if e.kind == "telemetry"]
    assert [(e.stage, e.data["step"], e.data["remaining_steps"]) for e in telemetry] == [
        ("finetune_dense", 6, 4), ("recover", 4, 0),
    ]  # fmt: skip
    assert all(e.data["stage_steps_per_s"] > 0 and e.progress for e in telemetry)

    arts = {
        a.kind: a for a in db_session.scalars(select(Artifact).where(Artifact.job_id == job_id))
    }
    assert set(arts) == {
        "model",
        "model_int8",
        "report",
        "model_onnx",
        "model_int8_onnx",
        "report_md",
        "plot_sparsity",
        "plot_accuracy",
        "plot_latency_size",
    }
    store: LocalStore = env["store"]
    for a in arts.values():
        data = store.local_path(a.storage_key).read_bytes()
        assert hashlib.sha256(data).hexdigest() == a.sha256 and len(data) == a.size_bytes
    assert arts["report"].media_type == "application/json"
    assert arts["model"].media_type == "application/gzip"
    assert arts["model"].filename == "model.tar.gz"
    assert arts["model_onnx"].filename == "model.onnx"
    assert arts["report_md"].media_type == "text/markdown"

    report = json.loads(store.local_path(arts["report"].storage_key).read_text())
    for key in ("spec", "dense", "compressed", "int8", "stage_seconds", "versions", "max_length"):
        assert key in report
    assert report["versions"]["torch"] == torch.__version__
    assert report["artifacts"]["model"]["sha256"] == arts["model"].sha256
    for block in ("dense", "compressed"):
        for key in ("accuracy", "macro_f1", "parameters", "file_size", "latency_cpu_ms"):
            assert key in report[block], (block, key)
        assert set(report[block]["latency_cpu_ms"]) == {"batch_1_ms", "batch_32_ms"}
    assert set(report["stage_seconds"]) == set(stages)

    # The model artifact loads with transformers and reproduces the report.
    out = tmp_path / "downloaded"
    with tarfile.open(store.local_path(arts["model"].storage_key)) as t:
        t.extractall(out, filter="data")
    model = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    tok = AutoTokenizer.from_pretrained(str(out))
    sp = sparsity_of(prunable_targets(model))
    assert report["compressed"]["sparsity"]["overall"] == pytest.approx(sp.overall)
    assert sp.overall == pytest.approx(0.5, abs=1e-3)
    assert report["compressed"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert report["compressed"]["file_size"]["raw_mb"] == pytest.approx(
        (out / "model.safetensors").stat().st_size / 2**20, abs=1e-3
    )
    data = load_builtin_tsv("sst2", DatasetSpec(name="sst2"), env["settings"].data_dir)
    ev = evaluate(
        model,
        tok,
        data.dev,
        data.label_names,
        batch_size=64,
        max_length=16,
        device=torch.device("cpu"),
    )
    assert ev.accuracy == pytest.approx(report["compressed"]["accuracy"])
    assert job.metrics["accuracy"] == report["compressed"]["accuracy"]
    assert job.metrics["dense_accuracy"] == report["dense"]["accuracy"]

    out8 = tmp_path / "int8"
    with tarfile.open(store.local_path(arts["model_int8"].storage_key)) as t:
        t.extractall(out8, filter="data")
    q = load_int8_dir(out8)
    ev8 = evaluate(
        q, tok, data.dev, data.label_names, batch_size=64, max_length=16, device=torch.device("cpu")
    )
    assert ev8.accuracy == pytest.approx(report["int8"]["accuracy"])

    # A duplicate delivery of a finished job is a no-op.
    assert run(env, job_id) == "succeeded"
    assert fresh(db_session, job_id).attempts == 1


def test_cancel_requested_before_start(env: dict[str, Any], db_session: Session) -> None:
    job_id = add_job(db_session, spec(env["model_id"]), cancel_requested=True)
    assert run(env, job_id) == "canceled"
    job = fresh(db_session, job_id)
    assert job.status == "canceled" and job.attempts == 0 and job.finished_at


def test_the_terminal_webhook_is_under_the_workers_public_base_url(
    env: dict[str, Any], db_session: Session
) -> None:
    job_id = add_job(db_session, spec(env["model_id"]), cancel_requested=True,
                     webhook_url="http://127.0.0.1:9/hook")  # fmt: skip
    settings = env["settings"].model_copy(update={"public_base_url": "https://worker.example"})
    assert run_job(job_id, session_factory=env["factory"], settings=settings) == "canceled"
    db_session.expire_all()
    [d] = db_session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id))
    assert d.payload["data"]["artifacts_url"] == (
        f"https://worker.example/v1/jobs/{job_id}/artifacts"
    )


def test_cancel_while_running(
    env: dict[str, Any], db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.pipelines.compress as compress

    job_id = add_job(db_session, spec(env["model_id"]))
    original = compress.stage_dense

    def cancel_then_continue(state: Any, ctx: Any) -> None:
        with env["factory"]() as s:
            s.execute(text("UPDATE job SET cancel_requested = true WHERE id = :id"), {"id": job_id})
            s.commit()
        original(state, ctx)

    monkeypatch.setattr(compress, "stage_dense", cancel_then_continue)
    assert run(env, job_id) == "canceled"
    job = fresh(db_session, job_id)
    assert job.status == "canceled" and job.stage == "finetune_dense" and job.finished_at
    assert not db_session.scalars(select(Artifact).where(Artifact.job_id == job_id)).all()


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"dataset": {"name": "agnews"}}, "dataset_unavailable"),
        ({"model": "00000000-0000-0000-0000-000000000001"}, "model_unavailable"),
        ({"layers": {"keep": 5}}, "unsupported_spec"),
        ({"pruning": {"sparsity": 7}}, "invalid_spec"),
    ],
)
def test_known_failures_have_codes(
    env: dict[str, Any], db_session: Session, over: dict[str, Any], code: str
) -> None:
    job_id = add_job(db_session, spec(env["model_id"], **over))
    assert run(env, job_id) == "failed"
    job = fresh(db_session, job_id)
    assert job.status == "failed" and job.error_code == code and job.error_message
    assert job.finished_at is not None


def test_unexpected_error_is_internal(
    env: dict[str, Any], db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.pipelines.compress as compress

    def boom(state: Any, ctx: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(compress, "stage_dense", boom)
    job_id = add_job(db_session, spec(env["model_id"]))
    assert run(env, job_id) == "failed"
    job = fresh(db_session, job_id)
    assert job.error_code == "internal_error" and "disk on fire" in (job.error_message or "")


def test_duplicate_delivery_while_running_is_a_noop(
    env: dict[str, Any], db_session: Session, pg_engine: Engine
) -> None:
    job_id = add_job(db_session, spec(env["model_id"]))
    with pg_engine.connect() as other:  # another worker holds the job's lock
        assert other.execute(
            text("SELECT pg_try_advisory_lock(:k)"), {"k": advisory_key(job_id)}
        ).scalar()
        assert run(env, job_id) == "queued"
        other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": advisory_key(job_id)})
    assert fresh(db_session, job_id).attempts == 0


def test_too_many_attempts_fails(env: dict[str, Any], db_session: Session) -> None:
    job_id = add_job(db_session, spec(env["model_id"]))
    db_session.execute(
        text("UPDATE job SET status='running', attempts=3 WHERE id=:id"), {"id": job_id}
    )
    assert run(env, job_id) == "failed"
    assert fresh(db_session, job_id).error_code == "too_many_attempts"


def test_runs_on_the_embedded_sqlite_default(tmp_path: Path) -> None:
    from sqlalchemy.orm import sessionmaker

    from alembic import command
    from app.db.session import make_engine
    from tests.conftest import alembic_config

    url = f"sqlite:///{tmp_path / 'scalpel.db'}"
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url)
    try:
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        settings, _, model = make_files(tmp_path)
        with factory() as s:
            model.tenant_id = default_tenant_id(s)
            s.add(model)
            s.flush()
            job_id = add_job(s, spec(model.id, quantization={"method": "none"}))
            s.commit()
        status = run_job(job_id, session_factory=factory, settings=settings, latency_iters=(1, 1))
        assert status == "succeeded"
        with factory() as s:
            job = s.get(Job, job_id)
            assert job is not None and job.status == "succeeded" and job.progress == 1.0
            kinds = {a.kind for a in s.scalars(select(Artifact).where(Artifact.job_id == job_id))}
            assert kinds >= {"model", "report", "model_onnx", "model_int8_onnx", "report_md"}
            assert "model_int8" not in kinds
        assert run_job(job_id, session_factory=factory, settings=settings) == "succeeded"
    finally:
        engine.dispose()


def test_engine_bound_sessions_take_and_release_the_lock(tmp_path: Path, pg_engine: Engine) -> None:
    """The production path: sessions from a sessionmaker on an Engine (committed for real,
    cleaned up after)."""
    from sqlalchemy import delete
    from sqlalchemy.orm import sessionmaker

    factory = sessionmaker(bind=pg_engine, expire_on_commit=False)
    settings, _, model = make_files(tmp_path)
    with factory() as s:
        model.tenant_id = default_tenant_id(s)
        s.add(model)
        s.flush()
        job_id = add_job(s, spec(model.id), cancel_requested=True)
        s.commit()
    try:
        with pg_engine.connect() as other:
            key = advisory_key(job_id)
            assert other.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            assert run_job(job_id, session_factory=factory, settings=settings) == "queued"
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            other.commit()
        assert run_job(job_id, session_factory=factory, settings=settings) == "canceled"
        with pg_engine.connect() as other:  # the runner released its lock
            assert other.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        with factory() as s:
            s.execute(delete(Job).where(Job.id == job_id))
            s.execute(delete(UploadedModel).where(UploadedModel.id == model.id))
            s.commit()


def test_reporter_throttles_progress_and_sees_cancel_between_steps(
    env: dict[str, Any], db_session: Session
) -> None:
    from worker.job_store import JobStore
    from worker.pipelines.errors import JobCanceled
    from worker.runner import DbReporter

    job_id = add_job(db_session, spec(env["model_id"]), status="running")
    store = JobStore(env["factory"])
    slow = DbReporter(store, job_id, min_interval_s=3600)
    slow.start([("a", 1.0), ("b", 1.0)])
    slow.stage("a")
    slow.step(0.5)  # throttled: not written
    assert fresh(db_session, job_id).progress == 0.0 and slow.progress == 0.25
    fast = DbReporter(store, job_id, min_interval_s=0.0)
    fast.start([("a", 1.0), ("b", 1.0)])
    fast.stage("b")
    db_session.execute(text("UPDATE job SET cancel_requested = true WHERE id = :id"),
                       {"id": job_id})  # fmt: skip
    with pytest.raises(JobCanceled):
        fast.step(0.5)
    job = fresh(db_session, job_id)
    assert job.progress == 0.75 and job.stage == "b"


def test_readme_names_the_codes_a_job_started_too_often_fails_with() -> None:
    """The reaper writes worker_lost, a redelivery's claim too_many_attempts: the README's
    MAX_ATTEMPTS row and its fault section say both."""
    import inspect

    from app.repositories import recovery
    from worker.job_store import JobStore

    assert '"worker_lost"' in inspect.getsource(recovery.fail_lost)
    assert '"too_many_attempts"' in inspect.getsource(JobStore.claim)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `MAX_ATTEMPTS`"))
    assert "`worker_lost`" in row and "`too_many_attempts`" in row
    faults = readme[readme.index("## Jobs survive faults") :]
    assert "`worker_lost`" in faults and "`too_many_attempts`" in faults


def test_reporter_writes_telemetry_with_progress_and_sees_cancel(
    env: dict[str, Any], db_session: Session
) -> None:
    from worker.job_store import JobStore
    from worker.pipelines.errors import JobCanceled
    from worker.pipelines.telemetry import StepSample, TelemetryPolicy
    from worker.runner import DbReporter

    job_id = add_job(db_session, spec(env["model_id"]), status="running")
    rep = DbReporter(JobStore(env["factory"]), job_id, min_interval_s=3600,
                     telemetry=TelemetryPolicy(every_steps=1, min_interval_s=0.0))  # fmt: skip
    rep.start([("a", 1.0), ("recover", 1.0), ("qat", 1.0)], steps={"recover": 4, "qat": 2})
    rep.stage("recover")
    meter = rep.train_meter()
    meter(StepSample(1, 4, 0.5, 1e-3, 8))
    rep.step(0.5)  # throttled: the progress is written with the next telemetry event
    meter(StepSample(2, 4, 0.25, 1e-3, 8))
    events = db_session.scalars(
        select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.kind == "telemetry")
        .order_by(JobEvent.seq)
    ).all()  # fmt: skip
    assert [(e.stage, e.data["step"], e.data["remaining_steps"]) for e in events] == [
        ("recover", 1, 3 + 2), ("recover", 2, 2 + 2),
    ]  # fmt: skip
    assert events[1].data["loss"] == 0.25 and events[1].progress == pytest.approx(0.5)
    assert fresh(db_session, job_id).progress == pytest.approx(0.5)
    db_session.execute(text("UPDATE job SET cancel_requested = true WHERE id = :id"),
                       {"id": job_id})  # fmt: skip
    with pytest.raises(JobCanceled):
        meter(StepSample(3, 4, 0.2, 1e-3, 8))
