"""Jobs and artifacts for the dashboard tests, put into a real server's database."""

from __future__ import annotations

import io
import json
import struct
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from app.db.models import Artifact, JobEvent
from app.db.session import make_engine
from app.repositories import artifacts as artifacts_repo
from app.storage import LocalStore
from tests.client.server import Server, spec, tiny_dataset_csv, tiny_model_zip

XSS_NAME = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
XSS_ERROR = '<b onmouseover="window.__xss = 3">boom</b>'
MODEL_BYTES = b"not really a tarball\x00\x01\x02" * 100
JOB_NAME = "tweets magnitude 50%"
JOB_LABELS = {"team": "search", "experiment": "gmp-50"}
UPLOADED_MODEL_NAME = "support-bert"
UPLOADED_DATASET_NAME = "support-tickets"
# As the worker records them (worker.pipelines.progress): seconds, to the millisecond.
STAGE_SECONDS = {"load": 3.212, "finetune_dense": 61.5, "prune": 0.41, "recover": 125.034,
                 "export": 7.25, "package": 1.9}  # fmt: skip
TOTAL_SECONDS = 199.306
# What the pruning stage streams after each pruning step (worker.pipelines.stages.prune).
STEPS: list[dict[str, Any]] = [
    {"step": 0, "sparsity": 0.1, "dev_accuracy": 0.9231},
    {"step": 40, "sparsity": 0.3, "dev_accuracy": 0.9102},
    {"step": 80, "sparsity": 0.5, "dev_accuracy": 0.8957},
]

REPORT: dict[str, Any] = {
    "dense": {"accuracy": 0.9345, "file_size": {"raw_mb": 86.7}, "latency_cpu_ms": {
        "batch_1_ms": 12.5, "batch_32_ms": 180.0}},
    "compressed": {
        "accuracy": 0.9123, "sparsity": {"overall": 0.5}, "file_size": {"raw_mb": 43.21,
        "gzip_mb": 20.5}, "latency_cpu_ms": {"batch_1_ms": 6.25, "batch_32_ms": 90.0}},
    "int8": None,
    "pruning": {"target_sparsity": 0.5},
}  # fmt: skip

# A question-answering job as the worker writes it now: every block names its primary metric.
QA_REPORT: dict[str, Any] = {
    "task": "question_answering",
    "dense": {"primary_metric": {"name": "f1", "value": 0.85}, "f1": 0.85, "exact_match": 0.77,
              "file_size": {"raw_mb": 86.7}, "latency_cpu_ms": {"batch_1_ms": 40.0}},
    "compressed": {
        "primary_metric": {"name": "f1", "value": 0.8125}, "f1": 0.8125, "exact_match": 0.72,
        "sparsity": {"overall": 0.8}, "file_size": {"raw_mb": 20.0, "gzip_mb": 9.0},
        "latency_cpu_ms": {"batch_1_ms": 20.0, "batch_32_ms": 300.0}},
    "int8": {"primary_metric": {"name": "f1", "value": 0.79}, "f1": 0.79, "exact_match": 0.7,
             "file_size": {"raw_mb": 6.0}, "latency_cpu_ms": {"batch_1_ms": 10.0}},
    "pruning": {"target_sparsity": 0.8},
}  # fmt: skip
QA_METRICS: dict[str, Any] = {
    "task": "question_answering", "primary_metric": {"name": "f1", "value": 0.8125},
    "dense_primary_metric": {"name": "f1", "value": 0.85}, "f1": 0.8125, "exact_match": 0.72,
    "dense_f1": 0.85, "sparsity": 0.8,
}  # fmt: skip
REGRESSION_METRICS: dict[str, Any] = {
    "task": "regression", "primary_metric": {"name": "spearman", "value": 0.87149},
    "dense_primary_metric": {"name": "spearman", "value": 0.8804}, "spearman": 0.87149,
    "pearson": 0.86, "mse": 0.52, "dense_spearman": 0.8804, "sparsity": 0.5,
    "model_size_mb": 43.21, "latency_b1_ms": 6.25,
}  # fmt: skip
NER_METRICS: dict[str, Any] = {
    "task": "token_classification", "primary_metric": {"name": "entity_f1", "value": 0.8471},
    "dense_primary_metric": {"name": "entity_f1", "value": 0.9},
    "int8_primary_metric": {"name": "entity_f1", "value": 0.83}, "entity_f1": 0.8471,
}  # fmt: skip


def png_bytes(width: int = 6, height: int = 4) -> bytes:
    """A valid RGB PNG, without an imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x20\x60\xc0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )  # fmt: skip


def add_artifact(
    server: Server, job_id: str, data: bytes, kind: str, filename: str, media_type: str
) -> str:
    stored = LocalStore(Path(server.env["STORAGE_DIR"])).put_stream(io.BytesIO(data))
    engine = make_engine(server.db_url)
    try:
        with Session(engine) as session:
            art = artifacts_repo.add(session, Artifact(
                job_id=uuid.UUID(job_id), kind=kind, filename=filename, media_type=media_type,
                size_bytes=stored.size_bytes, sha256=stored.sha256, storage_key=stored.key,
            ))  # fmt: skip
            session.commit()
            return str(art.id)
    finally:
        engine.dispose()


def add_event(
    server: Server, job_id: str, kind: str, *, stage: str | None = None,
    data: dict[str, Any] | None = None, status: str | None = None,
) -> None:  # fmt: skip
    """A job event as the worker writes it (numbered by app.repositories.events)."""
    engine = make_engine(server.db_url)
    try:
        with Session(engine) as session:
            session.add(JobEvent(job_id=uuid.UUID(job_id), kind=kind, stage=stage, data=data,
                                 status=status))  # fmt: skip
            session.commit()
    finally:
        engine.dispose()


def train(server: Server, job_id: str, remaining_steps: int, steps_per_s: float) -> None:
    """The job running in `recover`, a telemetry event just written as the worker's: its
    training ends in remaining_steps / steps_per_s seconds (the job's eta_seconds)."""
    server.finish_job(job_id, "running", stage="recover", progress=0.4,
                      started_at=datetime.now(UTC) - timedelta(seconds=30))  # fmt: skip
    add_event(server, job_id, "telemetry", stage="recover", data={
        "step": 100, "total_steps": 100 + remaining_steps, "remaining_steps": remaining_steps,
        "steps_per_s": steps_per_s, "stage_steps_per_s": steps_per_s,
    })  # fmt: skip


def add_steps(server: Server, job_id: str, steps: list[dict[str, Any]]) -> None:
    for values in steps:
        add_event(server, job_id, "progress", stage="recover")  # events between the steps
        add_event(server, job_id, "metrics", stage="recover", data=values)


@dataclass
class Seeded:
    queued: str
    running: str
    succeeded: str
    evil: str
    model_artifact: str
    qa: str  # new-style metrics and report.json
    regression: str  # new-style metrics, no report
    ner: str  # new-style metrics with an int8 model, no report
    uploaded: str  # on an uploaded model and data set
    canceled: str


def auth(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"}


def submit(server: Server, **fields: Any) -> str:
    """A job on spec() (overridden by fields: `name`, `labels` and spec fields)."""
    r = httpx.post(f"{server.url}/v1/jobs", json=spec(**fields), headers=auth(server),
                   timeout=30)  # fmt: skip
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def upload(server: Server, tmp: Path) -> tuple[str, str]:
    """An uploaded model and data set: their ids."""
    model = tiny_model_zip(tmp / "model.zip")
    with model.open("rb") as f:
        r = httpx.post(
            f"{server.url}/v1/models", headers=auth(server), timeout=60,
            files={"file": ("model.zip", f)}, data={"name": UPLOADED_MODEL_NAME},
        )  # fmt: skip
    assert r.status_code == 201, r.text
    dataset = tiny_dataset_csv(tmp / "data.csv")
    with dataset.open("rb") as f:
        r2 = httpx.post(
            f"{server.url}/v1/datasets", headers=auth(server), timeout=60,
            files={"file": ("data.csv", f)},
            data={"name": UPLOADED_DATASET_NAME, "text_columns": "text", "label_column": "label"},
        )  # fmt: skip
    assert r2.status_code == 201, r2.text
    return str(r.json()["id"]), str(r2.json()["id"])


SUCCEEDED_METRICS: dict[str, Any] = {
    "accuracy": 0.9123, "sparsity": 0.5, "model_size_mb": 43.21, "latency_b1_ms": 6.25,
    "onnx_int8_speedup_b1": 3.66, "stage_seconds": STAGE_SECONDS, "total_seconds": TOTAL_SECONDS,
}  # fmt: skip


def seed(server: Server) -> Seeded:
    queued, running, evil = (submit(server) for _ in range(3))
    succeeded = submit(server, name=JOB_NAME, labels=JOB_LABELS)
    server.finish_job(running, "running", stage="train", progress=0.3)
    add_steps(server, running, STEPS[:2])
    finished = datetime.now(UTC)
    server.finish_job(succeeded, "succeeded", stage="package", progress=1.0,
                      metrics=SUCCEEDED_METRICS, finished_at=finished,
                      started_at=finished - timedelta(seconds=TOTAL_SECONDS))  # fmt: skip
    add_steps(server, succeeded, STEPS)
    report = json.dumps(REPORT).encode()
    add_artifact(server, succeeded, report, "report", "report.json", "application/json")
    add_artifact(server, succeeded, png_bytes(), "plot_sparsity", "sparsity.png", "image/png")
    model = add_artifact(
        server, succeeded, MODEL_BYTES, "model", "model.tar.gz", "application/gzip"
    )
    add_artifact(server, succeeded, MODEL_BYTES, "model_int8", "model-int8.tar.gz",
                 "application/gzip")  # fmt: skip
    add_artifact(server, succeeded, MODEL_BYTES * 1000, "model_int8_onnx", "model-int8.onnx",
                 "application/octet-stream")  # fmt: skip
    server.finish_job(
        evil, "failed", name=XSS_NAME, labels={"xss": XSS_NAME}, error_code="bad_input",
        error_message=XSS_ERROR,
    )  # fmt: skip
    qa, regression, ner = (submit(server) for _ in range(3))
    server.finish_job(qa, "succeeded", stage="package", progress=1.0, metrics=QA_METRICS)
    qa_report = json.dumps(QA_REPORT).encode()
    add_artifact(server, qa, qa_report, "report", "report.json", "application/json")
    for job_id, metrics in ((regression, REGRESSION_METRICS), (ner, NER_METRICS)):
        server.finish_job(job_id, "succeeded", stage="package", progress=1.0, metrics=metrics)
    model_id, dataset_id = upload(server, server.tmp)
    uploaded = submit(server, model=model_id, dataset={"name": dataset_id})
    canceled = submit(server, name="canceled on the way")
    server.finish_job(canceled, "canceled", stage="recover", progress=0.4,
                      metrics={"stage_seconds": {"load": 2.5, "recover": 12.0}})  # fmt: skip
    return Seeded(queued, running, succeeded, evil, model, qa, regression, ner, uploaded,
                  canceled)  # fmt: skip
