"""Quantization-aware training (qat_int8): the fake quantizer, conversion and the pipeline."""

from __future__ import annotations

import copy
import json
import math
import tarfile
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.worker.pipelines.test_compress import ctx_for, make_env, spec
from worker.compression import (
    apply_masks,
    int8_state_dict,
    load_int8_state_dict,
)
from worker.compression.qat import QATLinear, convert_qat, prepare_qat
from worker.pipelines.architecture import prunable_targets
from worker.pipelines.compress import plan, run_pipeline
from worker.pipelines.evaluate import evaluate
from worker.pipelines.package import load_int8_dir
from worker.pipelines.progress import MemoryReporter
from worker.pipelines.telemetry import TelemetryPolicy

TEXTS = ["a fine film", "dull and slow", "great acting, weak plot", "i loved every minute"]


def _half_masks(model: Any) -> dict[str, torch.Tensor]:
    targets = prunable_targets(model)
    masks = {n: m.weight.abs() > m.weight.abs().median() for n, m in targets.items()}
    apply_masks(targets, masks)
    return masks


def test_qat_convert_keeps_mask_and_matches_fake_quant(tiny_model: Any, tokenizer: Any) -> None:
    masks = _half_masks(tiny_model)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    qat = prepare_qat(copy.deepcopy(tiny_model))
    assert any(isinstance(m, QATLinear) for m in qat.modules())
    qat.train()
    with torch.no_grad():
        qat(**batch)  # calibrates the activation observers
    qat.eval()
    fp32, qmodel = convert_qat(qat)
    sd = int8_state_dict(qmodel)
    for name, mask in masks.items():
        assert sd[name + ".weight"].dtype == torch.int8
        assert sd[name + ".weight_scale"].dim() == 1  # per channel
        assert torch.all(sd[name + ".weight"][~mask] == 0)
        baked_linear = fp32.get_submodule(name)
        assert isinstance(baked_linear, torch.nn.Linear)
        assert torch.all(baked_linear.weight[~mask] == 0)
    with torch.no_grad():
        fq = qat(**batch).logits
        q = qmodel(**batch).logits
        reloaded = load_int8_state_dict(fp32, sd)(**batch).logits
        baked = fp32(**batch).logits
    span = float(fq.abs().max()) + 1e-6
    assert float((q - fq).abs().max()) <= 0.1 * span + 1e-3
    assert float((baked - fq).abs().max()) <= 0.1 * span + 1e-3
    torch.testing.assert_close(reloaded, q)


def test_qat_pipeline_keeps_mask_and_reports_artifact_accuracy(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    rep = MemoryReporter(telemetry=TelemetryPolicy(every_steps=2, min_interval_s=0.0))
    s = spec(
        env["model_id"],
        pruning={"method": "magnitude", "sparsity": 0.5},
        quantization={"method": "qat_int8", "qat_steps": 3},
    )
    assert "qat" in [n for n, _ in plan(s, finetune=True, n_train=48)]
    ctx = ctx_for(env, tmp_path, rep)
    summary = run_pipeline(s, ctx)
    assert "qat" in rep.stages and "quantize" not in rep.stages
    check_telemetry(rep)
    report = json.loads(env["artifacts"]["report"][0].read_text())
    assert report["training_steps"]["qat"] == 3
    assert report["resumed_from"] is None
    assert summary["sparsity"] == pytest.approx(0.5, abs=1e-3)
    folder = tmp_path / "int8"
    with tarfile.open(env["artifacts"]["model_int8"][0]) as t:
        t.extractall(folder, filter="data")
    info = json.loads((folder / "quantization.json").read_text())
    assert info["method"] == "qat_int8"
    from safetensors.torch import load_file

    sd = load_file(str(folder / "model.int8.safetensors"))
    zeros = total = 0
    for name, value in sd.items():
        if ".encoder.layer." in name and name.endswith(".weight") and value.dtype == torch.int8:
            zeros += int((value == 0).sum())
            total += value.numel()
    assert total > 0 and zeros / total >= 0.5 - 1e-3  # pruned weights are exactly 0 in int8
    qmodel = load_int8_dir(folder)
    from transformers import AutoTokenizer

    from worker.pipelines.data import load_dataset

    data = load_dataset(s.dataset, data_dir=env["settings"].data_dir, lookup=env["uploads"],
                        store=env["store"], seed=0)  # fmt: skip
    ev = evaluate(
        qmodel,
        AutoTokenizer.from_pretrained(str(folder)),
        data.dev,
        data.label_names,
        batch_size=s.training.eval_batch_size,
        max_length=s.dataset.max_length,
        device=torch.device("cpu"),
    )
    assert report["int8"]["accuracy"] == pytest.approx(ev.accuracy)
    onnx_int8 = report["onnx"]["int8"]
    assert onnx_int8["parity_vs_qat"]["reference"] == "pytorch_qat"
    assert onnx_int8["parity_vs_qat"]["agreement"] >= 0.8


def check_telemetry(rep: MemoryReporter) -> None:
    """The three training stages' telemetry (4 fine-tuning, 6 recovery, 3 QAT steps): every 2
    steps and at each stage's last, each counting the steps left of the later stages too."""
    got = [(stage, d["step"], d["total_steps"], d["remaining_steps"])
           for stage, d in rep.telemetry_log]  # fmt: skip
    assert got == [
        ("finetune_dense", 2, 4, 2 + 6 + 3), ("finetune_dense", 4, 4, 6 + 3),
        ("recover", 2, 6, 4 + 3), ("recover", 4, 6, 2 + 3), ("recover", 6, 6, 3),
        ("qat", 2, 3, 1), ("qat", 3, 3, 0),
    ]  # fmt: skip
    for _, d in rep.telemetry_log:
        assert d["loss"] is not None and math.isfinite(d["loss"]) and d["loss"] > 0
        assert d["loss_steps"] in (1, 2) and 0 <= d["learning_rate"] <= 1e-3
        assert d["steps_per_s"] > 0 and d["examples_per_s"] >= d["steps_per_s"]
        assert d["stage_steps_per_s"] > 0 and d["elapsed_s"] > 0
