"""The report as typed models: report.json of this version and of earlier ones loads and dumps
back as it was written, unknown keys are refused outside the `structured` section, and the
module stays torch-free."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.reports import SCHEMA_VERSION, Report, Scores
from tests.factories.reports import previous_shape, report_json

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("structured", [False, True])
def test_a_report_dumps_back_as_it_was_written(structured: bool) -> None:
    data = report_json(structured=structured)
    report = Report.model_validate(data)
    assert report.schema_version == SCHEMA_VERSION == 1
    assert report.model_dump(mode="json") == data
    assert report.compressed.sparsity.per_encoder_layer == {"0": 0.59, "1": 0.61}
    assert report.onnx is not None and report.onnx.int8.batch_1 is not None
    assert report.onnx.int8.batch_1.primary().value == 0.6875
    # a block dumps the keys of its task only: no null metrics of the other tasks
    assert "spearman" not in report.model_dump(mode="json")["compressed"]


def test_a_report_of_the_previous_shape_loads_unchanged() -> None:
    old = previous_shape(report_json())
    report = Report.model_validate(old)
    assert report.schema_version == 0  # written before the report had a schema
    assert report.model_dump(mode="json") == old  # nothing added on the way back


def pre_task_report() -> dict[str, Any]:
    """A report from before there were several tasks: accuracy-only blocks counting `n`, no
    task, parity with `max_abs_logit_diff` and no unit, no cpu, teacher cache or versions."""
    block = {"accuracy": 0.8125, "macro_f1": 0.8, "n": 8,
             "file_size": {"raw_mb": 4.0, "gzip_mb": 1.5},
             "latency_cpu_ms": {"batch_1_ms": 5.0, "batch_32_ms": 40.0}}  # fmt: skip
    onnx = {**block, "parity": {"reference": "pytorch_fp32", "agreement": 1.0,
                                "max_abs_logit_diff": 1e-6, "n": 8}}  # fmt: skip
    return {
        "job_id": "j1",
        "spec": {"quantization": {"method": "none"}},
        "model": {"source": "builtin:minilm"},
        "dataset": {"name": "sst2", "train_examples": 10, "dev_examples": 8},
        "dense": {**block, "parameters": 1000, "encoder_sparsity": 0.0},
        "compressed": {**block, "parameters": 900, "sparsity": {"overall": 0.8}},
        "int8": None,
        "pruning": {
            "method": "magnitude",
            "target_sparsity": 0.8,
            "applied": [{"step": 2, "sparsity": 0.5, "accuracy": 0.75}],
        },
        "onnx": {"fp32": onnx, "int8": {**block, "parity": None}},
        "stage_seconds": {"load": 1.0},
    }


def test_a_report_from_before_the_tasks_loads_with_its_defaults() -> None:
    data = pre_task_report()
    report = Report.model_validate(data)
    assert report.task == "sequence_classification" and report.schema_version == 0
    primary = report.compressed.primary()
    assert (primary.name, primary.value) == ("accuracy", 0.8125)
    assert report.pruning is not None and report.pruning.applied[0].primary().value == 0.75
    assert report.onnx is not None and report.onnx.fp32.parity is not None
    parity = report.onnx.fp32.parity
    assert parity.max_abs_diff == 1e-6 and parity.unit == "examples"
    assert report.onnx.dense_fp32 is None and report.teacher_cache is None
    assert report.compressed.eval_examples is None and report.compressed.n == 8
    assert report.compressed.sparsity.per_encoder_layer == {}
    dumped = report.model_dump(mode="json")
    assert dumped["onnx"]["fp32"]["parity"] == {
        "reference": "pytorch_fp32", "agreement": 1.0, "max_abs_diff": 1e-6, "n": 8
    }  # fmt: skip
    del dumped["onnx"]["fp32"]["parity"], data["onnx"]["fp32"]["parity"]
    assert dumped == data  # the rest as it was written


def test_an_eval_block_without_its_measurements_is_refused() -> None:
    data = report_json()
    del data["compressed"]["sparsity"]
    with pytest.raises(ValidationError) as err:
        Report.model_validate(data)
    assert err.value.errors()[0]["loc"] == ("compressed", "sparsity")


@pytest.mark.parametrize(
    "path", [("compressed",), ("onnx", "fp32", "parity"), ("teacher_cache",), ()]
)
def test_a_key_no_model_declares_is_refused(path: tuple[str, ...]) -> None:
    data = report_json()
    node = data
    for key in path:
        node = node[key]
    node["hits"] = 3
    with pytest.raises(ValidationError) as err:
        Report.model_validate(data)
    assert err.value.errors()[0]["type"] == "extra_forbidden"
    assert err.value.errors()[0]["loc"] == (*path, "hits")


def test_the_structured_section_keeps_keys_of_its_own() -> None:
    data = report_json(structured=True)
    st = data["structured"]
    st["planning_seconds"] = 3
    st["final"]["measured_at_plan_speedup"] = 1.45
    st["per_step"][0]["plan"] = {"rounds": 3, "speedup": 1.2}
    report = Report.model_validate(data)
    assert report.structured is not None
    assert report.structured.model_extra == {"planning_seconds": 3}
    assert report.structured.final.predicted_speedup == 1.52
    assert report.model_dump(mode="json") == data  # the added keys are dumped as given
    broken = copy.deepcopy(data)
    broken["structured"]["final"]["predicted_speedup"] = "fast"
    with pytest.raises(ValidationError):
        Report.model_validate(broken)  # a declared key keeps its type


def test_scores_read_the_primary_metric_and_every_scalar() -> None:
    block = Scores.model_validate(
        {"primary_metric": {"name": "entity_f1", "value": 0.84}, "entity_f1": 0.84,
         "entity_precision": 0.9, "token_accuracy": 0.97, "per_type": {"PER": {"f1": 0.8}}}
    )  # fmt: skip
    assert block.scalars() == {"entity_f1": 0.84, "entity_precision": 0.9, "token_accuracy": 0.97}
    assert block.metric("token_accuracy") == 0.97 and block.metric("f1") is None
    old = Scores.model_validate({"accuracy": 0.5})
    assert old.primary().name == "accuracy" and old.metric("accuracy") == 0.5
    named_only = Scores.model_validate({"primary_metric": {"name": "bleu", "value": 0.3}})
    assert named_only.metric("bleu") == 0.3 and named_only.scalars() == {}


def test_the_spec_reads_as_recorded_and_validates() -> None:
    report = Report.model_validate(report_json(recipe="obert-80"))
    assert report.spec_at("recipe") == "obert-80@2"
    assert report.spec_at("pruning", "method") == "obert"
    assert report.spec_at("pruning", "nothing", "here") is None
    spec = report.job_spec()
    assert spec.recipe == "obert-80@2" and spec.quantization.method == "dynamic_int8"
    assert spec.model_dump(mode="json") == report.spec
    old = Report.model_validate(pre_task_report())
    assert old.spec_at("quantization", "method") == "none"
    with pytest.raises(ValidationError):
        old.job_spec()  # an incomplete spec of an early report does not validate


def test_the_report_models_import_without_torch_or_the_worker() -> None:
    code = (
        "import sys, app.reports\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'worker'))]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
