from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from worker.pipelines.data import Example
from worker.pipelines.errors import JobCanceled
from worker.pipelines.evaluate import classification_metrics, evaluate
from worker.pipelines.measure import count_parameters, cpu_latencies, file_sizes_mb
from worker.pipelines.progress import MemoryReporter, StagePlan


def test_classification_metrics_known_case() -> None:
    preds = [0, 0, 1, 1, 2, 0]
    labels = [0, 1, 1, 1, 2, 2]
    r = classification_metrics(preds, labels, ["a", "b", "c"])
    assert r.accuracy == pytest.approx(4 / 6)
    # a: P=1/3... tp=1, fp=2 (idx1, idx5), fn=0 -> P=1/3, R=1, F1=0.5
    assert r.per_class["a"]["f1"] == pytest.approx(0.5)
    # b: tp=2, fp=0, fn=1 -> P=1, R=2/3, F1=0.8
    assert r.per_class["b"]["f1"] == pytest.approx(0.8)
    # c: tp=1, fp=0, fn=1 -> F1=2/3
    assert r.per_class["c"]["f1"] == pytest.approx(2 / 3)
    assert r.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert r.per_class["c"]["support"] == 2


class KeywordModel(nn.Module):
    """Predicts 1 when token id `good` occurs in the row."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.good = good

    def forward(self, input_ids: torch.Tensor, **_: Any) -> Any:
        hit = (input_ids == self.good).any(dim=1).float()
        return type("Out", (), {"logits": torch.stack([1 - hit, hit], dim=1)})()


def test_evaluate_on_known_tiny_case(tokenizer: Any) -> None:
    good = tokenizer.convert_tokens_to_ids("good")
    exs = [
        Example("a good film", None, 1),
        Example("a bad film", None, 0),
        Example("good good", None, 0),
        Example("nothing", None, 1),
    ]
    r = evaluate(
        KeywordModel(good),
        tokenizer,
        exs,
        ["neg", "pos"],
        batch_size=3,
        max_length=16,
        device=torch.device("cpu"),
    )
    assert r.accuracy == 0.5 and r.n == 4


def test_measure_sane_numbers(tiny_model: Any, tokenizer: Any, tiny_bert_dir: Path) -> None:
    n = count_parameters(tiny_model)
    assert n == sum(p.numel() for p in tiny_model.parameters()) and n > 30522 * 32
    sizes = file_sizes_mb(tiny_bert_dir / "model.safetensors")
    assert sizes["raw_mb"] == pytest.approx(n * 4 / 2**20, rel=0.05)
    assert 0 < sizes["gzip_mb"] < sizes["raw_mb"] * 1.01
    lat = cpu_latencies(tiny_model, tokenizer, 16, iters_b1=2, iters_b32=1)
    assert 0 < lat["batch_1_ms"] < 5000 and 0 < lat["batch_32_ms"] < 20000


def test_stage_plan_and_reporter_cancel() -> None:
    plan = StagePlan([("a", 1.0), ("b", 3.0)])
    assert plan.overall("a", 0.5) == pytest.approx(0.125)
    assert plan.overall("b", 1.0) == pytest.approx(1.0)
    rep = MemoryReporter(cancel_at_stage="b")
    rep.start([("a", 1.0), ("b", 3.0)])
    rep.stage("a")
    rep.step(0.5)
    rep.step(0.2)  # never goes backwards
    assert rep.progress == pytest.approx(0.125)
    with pytest.raises(JobCanceled):
        rep.stage("b")
    assert rep.stages == ["a", "b"]
