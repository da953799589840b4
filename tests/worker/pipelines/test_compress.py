"""The whole pipeline on a tiny random BERT, without the database (an in-memory reporter)."""

from __future__ import annotations

import json
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch

from app.reports import SCHEMA_VERSION, Report
from app.schemas.job_spec import JobSpec
from app.settings import Settings
from app.storage import LocalStore
from tests.factories.tiny_bert import archive, write_sst2_like, write_tiny_bert
from worker.job_store import DatasetRecord, ModelRecord
from worker.pipelines.compress import plan, run_pipeline
from worker.pipelines.context import PipelineContext
from worker.pipelines.errors import JobCanceled
from worker.pipelines.host import INT8_FLAGS
from worker.pipelines.progress import MemoryReporter


class Uploads:
    def __init__(self) -> None:
        self.models: dict[uuid.UUID, ModelRecord] = {}

    def get_uploaded_model(self, model_id: uuid.UUID) -> ModelRecord | None:
        return self.models.get(model_id)

    def get_uploaded_dataset(self, dataset_id: uuid.UUID) -> DatasetRecord | None:
        return None


def make_env(
    tmp_path: Path, *, layers: int = 2, with_head: bool = False, model_dir: Path | None = None,
    n_train: int = 48, n_dev: int = 16,
) -> dict[str, Any]:  # fmt: skip
    """Settings, a store holding the uploaded model (a tiny BERT, or `model_dir`), the SST-2
    stand-in under DATA_DIR, and the lookups and artifact sink a pipeline context needs."""
    settings = Settings(
        data_dir=tmp_path / "data",
        storage_dir=tmp_path / "store",
        work_dir=tmp_path / "work",
        device="cpu",
    )
    write_sst2_like(settings.data_dir, n_train=n_train, n_dev=n_dev)
    store = LocalStore(settings.storage_dir)
    folder = model_dir or write_tiny_bert(tmp_path / "upload", layers=layers, with_head=with_head)
    stored = store.put_file(archive(folder, tmp_path / "m.zip", "zip", prefix="tiny"))
    uploads = Uploads()
    rec = ModelRecord(
        id=uuid.uuid4(),
        sha256=stored.sha256,
        storage_key=stored.key,
        archive_format="zip",
        architecture="BertModel",
        num_labels=None,
        config={},
    )
    uploads.models[rec.id] = rec
    artifacts: dict[str, tuple[Path, str]] = {}

    def add_artifact(kind: str, path: Path, filename: str, media_type: str) -> str:
        obj = store.put_file(path)
        artifacts[kind] = (store.local_path(obj.key), filename)
        return obj.sha256

    return {
        "settings": settings,
        "store": store,
        "uploads": uploads,
        "model_id": rec.id,
        "artifacts": artifacts,
        "add_artifact": add_artifact,
    }


def ctx_for(env: dict[str, Any], tmp_path: Path, reporter: MemoryReporter) -> PipelineContext:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return PipelineContext(
        settings=env["settings"],
        device=torch.device("cpu"),
        reporter=reporter,
        uploads=env["uploads"],
        store=env["store"],
        scratch=scratch,
        add_artifact=env["add_artifact"],
        job_id="t",
        latency_iters=(1, 1),
    )


def spec(model_id: uuid.UUID, **over: Any) -> JobSpec:
    body: dict[str, Any] = {
        "model": str(model_id),
        "dataset": {"name": "sst2", "max_length": 16},
        "training": {
            "max_steps": 4,
            "recovery_max_steps": 6,
            "batch_size": 8,
            "learning_rate": 1e-3,
        },
    }
    body.update(over)
    return JobSpec.model_validate(body)


def test_gradual_kd_layers_int8(tmp_path: Path) -> None:
    env = make_env(tmp_path, layers=4)
    rep = MemoryReporter()
    s = spec(
        env["model_id"],
        layers={"keep": 2},
        pruning={
            "method": "magnitude",
            "sparsity": 0.6,
            "schedule": {"kind": "gradual", "steps": 4, "pruning_steps": 2},
        },
        # token-level distillation too: the 2-layer student held to teacher layers 0 and 2
        distillation={"enabled": True, "hardness": 0.5, "temperature": 2.0, "hidden_weight": 0.5},
        quantization={"method": "dynamic_int8"},
    )
    summary = run_pipeline(s, ctx_for(env, tmp_path, rep))
    assert rep.stages == [
        "load",
        "finetune_dense",
        "evaluate_dense",
        "drop_layers",
        "recover",
        "quantize",
        "evaluate",
        "measure",
        "export",
        "package",
    ]
    assert rep.progress_log == sorted(rep.progress_log)
    assert summary["sparsity"] == pytest.approx(0.6, abs=1e-3)
    report = json.loads(env["artifacts"]["report"][0].read_text())
    assert report["compressed"]["num_hidden_layers"] == 2
    assert report["compressed"]["kept_layers"] == [0, 2]
    assert set(report["compressed"]["sparsity"]["per_encoder_layer"]) == {"0", "1"}
    assert [p["step"] for p in report["pruning"]["applied"]] == [2, 4]
    cache = report["teacher_cache"]  # hidden states are not cached: the teacher ran every batch
    assert cache["hit_batches"] == 0 and cache["teacher_batches"] == 6
    assert report["int8"]["file_size"]["raw_mb"] < report["compressed"]["file_size"]["raw_mb"]
    assert set(report["stage_seconds"]) == set(rep.stages)
    with tarfile.open(env["artifacts"]["model_int8"][0]) as t:
        names = set(t.getnames())
    assert {"config.json", "model.int8.safetensors", "quantization.json", "tokenizer.json"} <= names
    check_onnx_and_report_files(env, report, tmp_path)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _dev_rows(env: dict[str, Any]) -> list[tuple[str, int]]:
    lines = (env["settings"].data_dir / "sst2" / "dev.tsv").read_text().splitlines()[1:]
    return [(t, int(y)) for t, y in (line.split("\t") for line in lines)]


def _ort_accuracy(
    path: Path, tokenizer: Any, rows: list[tuple[str, int]], max_len: int, batch: int = 1
) -> float:
    """Recomputed here from the downloaded .onnx file, in batches of `batch` rows padded to
    their longest (one unpadded example at a time by default)."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    hits = 0
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        enc = tokenizer(
            [t for t, _ in chunk], padding=True, truncation=True, max_length=max_len,
            return_tensors="np",
        )  # fmt: skip
        feed = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items() if k in names}
        preds = sess.run(None, feed)[0].argmax(-1)
        hits += sum(int(p) == y for p, (_, y) in zip(preds, chunk, strict=True))
    return hits / len(rows)


def check_onnx_and_report_files(env: dict[str, Any], report: dict[str, Any], tmp: Path) -> None:
    from transformers import AutoTokenizer

    arts = env["artifacts"]
    assert arts["model_onnx"][1] == "model.onnx"
    assert arts["model_int8_onnx"][1] == "model-int8.onnx"
    onnx = report["onnx"]
    assert onnx["fp32"]["parity"]["agreement"] >= 0.995
    assert onnx["int8"]["parity"]["reference"] == "pytorch_int8"
    assert set(onnx) >= {"dense_fp32", "fp32", "int8", "opset"}
    assert report["cpu"]["threads"] == torch.get_num_threads()
    assert set(report["cpu"]["int8_instructions"] or ()) <= set(INT8_FLAGS)
    assert report["artifacts"]["model_onnx"]["filename"] == "model.onnx"
    assert {"report_md", "plot_sparsity", "plot_accuracy"} <= set(report["artifacts"])
    typed = Report.model_validate(report)  # report.json round-trips through the model
    assert typed.schema_version == SCHEMA_VERSION and typed.model_dump(mode="json") == report
    previous = {k: v for k, v in report.items() if k != "schema_version"}  # before the schema
    assert Report.model_validate(previous).model_dump(mode="json") == previous
    with tarfile.open(arts["model"][0]) as t:
        t.extractall(tmp / "tok", filter="data")
    tok = AutoTokenizer.from_pretrained(str(tmp / "tok"))
    rows = _dev_rows(env)
    batch = onnx["int8"]["eval_batch_size"]
    for key, kind in (("fp32", "model_onnx"), ("int8", "model_int8_onnx")):
        got = _ort_accuracy(arts[kind][0], tok, rows, report["max_length"], batch)
        assert onnx[key]["accuracy"] == pytest.approx(got)
        assert onnx[key]["eval_examples"] == len(rows)
    # dynamic int8 depends on the batching: one example at a time is the batch-1 figure
    alone = _ort_accuracy(arts["model_int8_onnx"][0], tok, rows, report["max_length"])
    assert onnx["int8"]["batch_1"]["accuracy"] == pytest.approx(alone)
    assert onnx["int8"]["batch_1"]["eval_examples"] == len(rows)
    md = arts["report_md"][0].read_text(encoding="utf-8")
    assert arts["report_md"][1] == "report.md"
    assert "| model | runtime | accuracy |" in md and "ONNX Runtime int8" in md
    assert "## Sparsity per layer" in md and "| encoder layer |" in md
    assert f"{100 * onnx['fp32']['accuracy']:.2f}%" in md
    assert "The int8 ONNX model run one example at a time" in md
    for kind, name in (
        ("plot_sparsity", "sparsity.png"),
        ("plot_accuracy", "accuracy.png"),
        ("plot_latency_size", "latency_size.png"),
    ):
        assert arts[kind][1] == name
        assert arts[kind][0].read_bytes()[:8] == PNG_SIGNATURE


def test_obert_oneshot_has_trained_head_skips_finetune(tmp_path: Path) -> None:
    env = make_env(tmp_path, with_head=True)
    rep = MemoryReporter()
    s = spec(
        env["model_id"],
        pruning={
            "method": "obert",
            "sparsity": 0.5,
            "obert": {"num_grads": 4, "grad_batch_size": 4, "block_size": 8},
        },
    )
    summary = run_pipeline(s, ctx_for(env, tmp_path, rep))
    assert "finetune_dense" not in rep.stages and "prune" in rep.stages
    assert summary["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert "model_int8" not in env["artifacts"]


def test_method_none_without_layers_skips_prune_and_recover(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    s = spec(env["model_id"], pruning={"method": "none"})
    names = [n for n, _ in plan(s, finetune=False, n_train=48)]
    assert names == ["load", "evaluate_dense", "evaluate", "measure", "export", "package"]
    s2 = spec(env["model_id"], training={"recovery_max_steps": 0})
    assert "recover" not in [n for n, _ in plan(s2, finetune=True, n_train=48)]


def test_cancel_at_stage_boundary(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    rep = MemoryReporter(cancel_at_stage="evaluate_dense")
    with pytest.raises(JobCanceled):
        run_pipeline(spec(env["model_id"]), ctx_for(env, tmp_path, rep))
    assert rep.stages[-1] == "evaluate_dense" and not env["artifacts"]


def test_export_parity_failure_fails_the_job_with_a_typed_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.worker.pipelines.test_export import _negate_logits
    from worker.pipelines import export as ex
    from worker.pipelines.errors import ExportParityFailed

    real_export = ex.export_onnx

    def broken_export(model: Any, tok: Any, dest: Path, **kw: Any) -> Path:
        return _negate_logits(real_export(model, tok, dest, **kw))

    monkeypatch.setattr(ex, "export_onnx", broken_export)
    env = make_env(tmp_path, with_head=True)
    rep = MemoryReporter()
    with pytest.raises(ExportParityFailed) as err:
        run_pipeline(spec(env["model_id"], pruning={"method": "none"}), ctx_for(env, tmp_path, rep))
    assert (
        err.value.code == "export_parity_failed" and "agrees with pytorch_fp32" in err.value.message
    )
    assert rep.stages[-1] == "export" and not env["artifacts"]
