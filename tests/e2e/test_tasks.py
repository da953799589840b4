"""End to end per task: a question-answering job and a named-entity job on a tiny random BERT,
submitted through the HTTP API with data sets uploaded for their task, run by a real Celery
worker on Redis and PostgreSQL to `succeeded`; the downloaded ONNX artifact is scored again
here (the task's own reader, split and metric over ONNX Runtime) and must give the report's
figure."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.schemas.job_spec import JobSpec
from tests.e2e.test_redis_postgres import download, run_to_success, stack, upload_tiny_model
from tests.factories.datasets import OneDataset as _Uploads
from worker.job_store import DatasetRecord

pytestmark = pytest.mark.e2e
__all__ = ["stack"]  # the fixture, used by the tests below

NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
CITIES = ("paris", "rome", "oslo", "lima", "cairo", "delhi", "tokyo", "quito")


def qa_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Questions whose answer is a city named in the context (at a checked offset)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        name, city = rng.choice(NAMES), rng.choice(CITIES)
        context = f"{name} was born in {city} and later moved away to study music there."
        start = context.index(city)
        rows.append({
            "id": f"q{i}", "question": f"where was {name} born?", "context": context,
            "answers": {"text": [city], "answer_start": [start]},
        })  # fmt: skip
    return rows


def ner_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        name, city = rng.choice(NAMES), rng.choice(CITIES)
        tokens = [name.title(), "lives", "in", city.title(), "now"]
        rows.append({"tokens": tokens, "tags": ["B-PER", "O", "O", "B-LOC", "O"]})
    return rows


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def upload_dataset(client: httpx.Client, path: Path, task: str) -> dict[str, Any]:
    with path.open("rb") as f:
        r = client.post(
            "/v1/datasets",
            files={"file": (path.name, f, "application/octet-stream")},
            data={"task": task},
        )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["task"] == task
    return body


def rescore(
    report: dict[str, Any], data: Path, uploaded: dict[str, Any], onnx: Path, model_dir: Path,
    tmp_path: Path,
) -> dict[str, Any]:  # fmt: skip
    """The report's spec, data set and downloaded ONNX file scored again here."""
    from transformers import AutoTokenizer

    from app.storage import LocalStore
    from worker.pipelines import export as ex
    from worker.pipelines.data import limit_splits
    from worker.pipelines.inference import EvalSet, onnx_outputs
    from worker.pipelines.tasks import get_task

    spec = JobSpec.model_validate(report["spec"])
    store = LocalStore(tmp_path / "rescore-store")
    rec = DatasetRecord(
        id=uuid.UUID(uploaded["id"]), format=uploaded["format"],
        storage_key=store.put_file(data).key, columns=uploaded["columns"],
        text_columns=uploaded["text_columns"], label_column=uploaded["label_column"],
        labels=uploaded["labels"], num_rows=uploaded["num_rows"], task=uploaded["task"],
        tag_scheme=(uploaded.get("options") or {}).get("tag_scheme"),
    )  # fmt: skip
    task = get_task(spec.task)
    loaded = task.load(
        spec.dataset, data_dir=tmp_path, lookup=_Uploads(rec), store=store,
        seed=spec.training.seed,
    )  # fmt: skip
    split = limit_splits(loaded, spec.dataset, spec.training.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    evalset = EvalSet.of(
        task, tokenizer, split.dev, split.label_names, spec.dataset,
        spec.training.eval_batch_size,
    )  # fmt: skip
    return evalset.score(onnx_outputs(evalset, ex.open_session(onnx))).as_dict()


def run_task_job(
    client: httpx.Client, logs: list[Path], tmp_path: Path, task: str, rows: list[dict[str, Any]],
    dataset: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    data = write_jsonl(rows, tmp_path / f"{task}.jsonl")
    uploaded = upload_dataset(client, data, task)
    model_id = upload_tiny_model(client, tmp_path)  # a bare BertModel: the task head is new
    spec = {
        "task": task, "model": model_id,
        "dataset": {"name": uploaded["id"], **dataset},
        "pruning": {"method": "magnitude", "sparsity": 0.5},
        "distillation": {"enabled": True},
        "quantization": {"method": "dynamic_int8"},
        "training": {"max_steps": 6, "recovery_max_steps": 6, "batch_size": 8},
    }  # fmt: skip
    job, arts, report = run_to_success(client, spec, logs, tmp_path)
    assert {"model", "model_int8", "model_onnx", "model_int8_onnx", "report"} <= set(arts)
    onnx = download(client, arts["model_onnx"], tmp_path / "model.onnx")
    tokenizer_dir = tmp_path / "tiny"  # upload_tiny_model wrote the tokenizer files there
    again = rescore(report, data, uploaded, onnx, tokenizer_dir, tmp_path)
    assert report["task"] == task and job["metrics"]["task"] == task
    fp32 = report["onnx"]["fp32"]
    assert again["primary_metric"] == pytest.approx(fp32["primary_metric"])
    assert fp32["parity"]["agreement"] >= 0.995
    primary = report["compressed"]["primary_metric"]
    assert job["metrics"]["primary_metric"] == pytest.approx(primary)
    assert report["compressed"]["sparsity"]["overall"] == pytest.approx(0.5, abs=1e-3)
    assert report["teacher_cache"]["items"] > 0
    return job, report


def test_question_answering_job_end_to_end(
    stack: tuple[httpx.Client, list[Path]], tmp_path: Path
) -> None:
    client, logs = stack
    job, report = run_task_job(
        client, logs, tmp_path, "question_answering", qa_rows(40),
        {"max_length": 32, "doc_stride": 8, "max_answer_length": 5},
    )  # fmt: skip
    import onnx

    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    outputs = {o.name: [d.dim_param for d in o.type.tensor_type.shape.dim] for o in graph.output}
    assert outputs == {
        "start_logits": ["batch", "sequence"], "end_logits": ["batch", "sequence"]
    }  # fmt: skip
    assert report["compressed"]["primary_metric"]["name"] == "f1"
    assert report["onnx"]["fp32"]["parity"]["unit"] == "questions"
    assert {"f1", "exact_match"} <= set(job["metrics"])


def test_token_classification_job_end_to_end(
    stack: tuple[httpx.Client, list[Path]], tmp_path: Path
) -> None:
    client, logs = stack
    _, report = run_task_job(
        client, logs, tmp_path, "token_classification", ner_rows(40), {"max_length": 16}
    )
    assert report["compressed"]["primary_metric"]["name"] == "entity_f1"
    assert report["onnx"]["fp32"]["parity"]["unit"] == "tokens"
    assert set(report["dataset"]["label_names"]) == {"O", "B-LOC", "I-LOC", "B-PER", "I-PER"}
    assert "per_type" in report["compressed"]
