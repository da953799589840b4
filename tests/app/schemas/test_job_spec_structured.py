"""pruning.method "structured": its options, their bounds, and the fields that do not go
with it, each refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.schemas.job_spec import JobSpec, StructuredSpec

BASE: dict[str, Any] = {"model": "minilm-l6", "dataset": {"name": "sst2"}}


def spec(pruning: dict[str, Any]) -> JobSpec:
    return JobSpec.model_validate({**BASE, "pruning": pruning})


def refused(pruning: dict[str, Any]) -> tuple[str, str]:
    """The one error's dotted location and message."""
    with pytest.raises(ValidationError) as info:
        spec(pruning)
    errors = info.value.errors()
    assert len(errors) == 1, errors
    return ".".join(str(x) for x in errors[0]["loc"]), errors[0]["msg"]


def test_the_defaults() -> None:
    got = spec({"method": "structured"}).pruning
    assert got.structured is None  # the worker reads None as StructuredSpec()
    d = StructuredSpec()
    assert (d.target_speedup, d.runtime, d.precision, d.steps, d.calibration_batches, d.damp,
            d.normalize_loss_by, d.target_band, d.latency_batch_size) == (
        2.0, "onnxruntime-cpu", "fp32", 3, 16, 0.01, "stream", "at_least", 1)  # fmt: skip


def test_options_are_kept() -> None:
    options = {"target_speedup": 3.5, "steps": 1, "calibration_batches": 4, "damp": 0.1,
               "latency_batch_size": 32, "runtime": "onnxruntime-cpu",
               "normalize_loss_by": "output", "target_band": "around",
               "precision": "int8"}  # fmt: skip
    got = spec({"method": "structured", "structured": options}).pruning.structured
    assert got is not None and got.model_dump() == options


def test_composes_with_layers_distillation_and_int8() -> None:
    body = {**BASE, "layers": {"keep": 4}, "distillation": {"enabled": True},
            "quantization": {"method": "qat_int8"},
            "pruning": {"method": "structured", "schedule": {"kind": "oneshot"}}}  # fmt: skip
    got = JobSpec.model_validate(body)
    assert got.pruning.method == "structured" and got.layers is not None


BOUNDS = [
    ("target_speedup", 1.0), ("target_speedup", 0.5), ("target_speedup", 20.5),
    ("target_speedup", "2"), ("runtime", "onnxruntime-gpu"), ("runtime", "tensorrt"),
    ("steps", 0), ("steps", 21), ("steps", 2.0), ("calibration_batches", 0),
    ("calibration_batches", 1025), ("damp", 0), ("damp", 1.5), ("latency_batch_size", 0),
    ("latency_batch_size", 8), ("latency_batch_size", 257), ("colour", "red"),
    ("normalize_loss_by", "input"), ("normalize_loss_by", None), ("target_band", "below"),
    ("target_band", 0.05),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value"), BOUNDS, ids=[f"{n}={v}" for n, v in BOUNDS])
def test_out_of_bounds_options_name_the_option(name: str, value: Any) -> None:
    where, _ = refused({"method": "structured", "structured": {name: value}})
    assert where == f"pruning.structured.{name}"


@pytest.mark.parametrize("method", ["magnitude", "obert", "none"])
def test_structured_options_only_with_method_structured(method: str) -> None:
    where, msg = refused({"method": method, "structured": {"target_speedup": 2.0}})
    assert where == "pruning.structured"
    assert "only valid with method 'structured'" in msg


def test_structured_options_without_a_method_are_refused() -> None:
    where, _ = refused({"structured": {}})  # the default method is magnitude
    assert where == "pruning.structured"


def test_a_gradual_schedule_is_refused_naming_the_schedule() -> None:
    where, msg = refused(
        {"method": "structured", "schedule": {"kind": "gradual", "epochs": 2, "pruning_steps": 4}}
    )
    assert where == "pruning.schedule"
    assert "pruning.structured.steps" in msg


def test_obert_options_are_refused_naming_them() -> None:
    where, msg = refused({"method": "structured", "obert": {"num_grads": 8}})
    assert where == "pruning.obert"
    assert "pruning.structured.steps" in msg


def test_obert_options_with_another_method_name_the_obert_field() -> None:
    where, msg = refused({"method": "magnitude", "obert": {"num_grads": 8}})
    assert where == "pruning.obert"
    assert msg == "Value error, 'obert' options are only valid with method 'obert'"
    assert spec({"method": "obert", "obert": {"num_grads": 8}}).pruning.obert is not None


def test_an_invalid_method_is_the_only_error() -> None:
    # the other fields' checks need a method: they stay quiet rather than guess one
    where, _ = refused({"method": "zip", "structured": {}, "obert": {}})
    assert where == "pruning.method"


def test_the_unstructured_fields_are_accepted_with_it() -> None:
    got = spec({"method": "structured", "sparsity": 0.9, "structure": "block4"}).pruning
    assert got.method == "structured" and got.sparsity == 0.9
