"""A job's `metrics` (app.schemas.job_metrics.JobMetrics): typed and documented, yet returned
exactly as stored, for jobs of the current shape and of older ones."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.reports import METRIC_NAMES
from app.schemas.job_metrics import MODEL_PREFIXES, PREFIXED_METRIC, JobMetrics, NamedMetric
from app.services.api_keys import IssuedKey
from tests.app.conftest import MakeClient
from tests.factories.job_metrics import previous_shape, running_metrics, succeeded_metrics
from tests.factories.jobs import make_job

# The keys JobMetrics declares beside the compressed model's scalar metrics.
HEADLINE_KEYS = {
    "task", "train_examples", "train_items", "dev_examples", "num_labels",
    "model_has_trained_head", "device", "primary_metric", "dense_primary_metric",
    "int8_primary_metric", "onnx_primary_metric", "onnx_int8_primary_metric", "sparsity",
    "parameters", "model_size_mb", "model_gzip_mb", "latency_b1_ms", "latency_b32_ms",
    "dense_latency_b1_ms", "int8_size_mb", "int8_latency_b1_ms", "onnx_agreement",
    "onnx_int8_latency_b1_ms", "onnx_int8_speedup_b1", "stage_seconds", "total_seconds",
}  # fmt: skip


def dumped(stored: dict[str, Any]) -> dict[str, Any]:
    return JobMetrics.of(stored).model_dump(mode="json")


def test_the_declared_keys_are_the_headline_ones_and_every_metric_name() -> None:
    assert set(JobMetrics.model_fields) == HEADLINE_KEYS | set(METRIC_NAMES)


def test_every_key_of_the_current_shape_is_declared_or_a_prefixed_metric() -> None:
    metrics = JobMetrics.of(succeeded_metrics())
    assert metrics.model_extra is not None
    assert set(metrics.model_extra) == {"dense_macro_f1", *(
        f"{p}_accuracy" for p in MODEL_PREFIXES)}  # fmt: skip
    assert metrics.primary_metric == NamedMetric(name="accuracy", value=0.8125)
    assert metrics.stage_seconds == succeeded_metrics()["stage_seconds"]


@pytest.mark.parametrize("stored", [succeeded_metrics(), running_metrics(), previous_shape(), {}])
def test_metrics_are_returned_as_stored(stored: dict[str, Any]) -> None:
    assert dumped(stored) == stored


def test_a_job_without_metrics_has_an_empty_object() -> None:
    assert JobMetrics.of(None).model_dump(mode="json") == {}


def test_no_null_is_added_for_a_key_the_job_does_not_have() -> None:
    out = dumped({"stage_seconds": {"load": 0.4}})
    assert out == {"stage_seconds": {"load": 0.4}}


def test_a_null_the_worker_wrote_stays() -> None:
    stored = {**succeeded_metrics(), "onnx_agreement": None, "onnx_int8_speedup_b1": None}
    assert dumped(stored) == stored


def test_unknown_keys_are_kept_whatever_their_type() -> None:
    stored = {"accuracy": 0.8, "notes": {"anything": [1, "two"]}, "flag": True}
    assert dumped(stored) == stored


def test_a_value_that_does_not_fit_its_key_is_left_out_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stored = {
        **succeeded_metrics(),
        "sparsity": "high",  # a declared key
        "primary_metric": {"value": 0.8},  # a nested one: no name
        "onnx_f1": "n/a",  # a prefixed metric
    }
    with caplog.at_level(logging.WARNING, logger="app.schemas.job_metrics"):
        out = JobMetrics.of(stored, job="job-1").model_dump(mode="json")
    fitting = {k: v for k, v in stored.items()
               if k not in {"sparsity", "primary_metric", "onnx_f1"}}  # fmt: skip
    assert out == fitting
    assert "job-1" in caplog.text
    assert "onnx_f1" in caplog.text and "primary_metric" in caplog.text


def test_validated_directly_a_misfit_is_an_error() -> None:
    with pytest.raises(ValidationError, match="onnx_int8_f1 must be a number"):
        JobMetrics.model_validate({"onnx_int8_f1": "n/a"})
    with pytest.raises(ValidationError):
        JobMetrics.model_validate({"dense_accuracy": True})
    with pytest.raises(ValidationError):
        JobMetrics.model_validate({"sparsity": "high"})


def test_the_prefixed_pattern_is_the_prefixes_and_the_metric_names() -> None:
    pattern = re.compile(PREFIXED_METRIC)
    assert pattern.match("onnx_int8_entity_f1") and pattern.match("dense_mse")
    assert not pattern.match("dense_latency_b1_ms") and not pattern.match("onnx_agreement")
    assert not pattern.match("accuracy") and not pattern.match("int8_size_mb")


def test_the_job_response_returns_the_stored_metrics(
    make_client: MakeClient, db_session: Session, api_key: IssuedKey
) -> None:
    job = make_job(db_session, api_key.tenant_id)
    job.metrics = {**succeeded_metrics(), "legacy_key": "kept"}
    db_session.commit()
    client = make_client()
    body = client.get(f"/v1/jobs/{job.id}").json()
    assert body["metrics"] == job.metrics
    listed = client.get("/v1/jobs").json()["items"]
    assert [j["metrics"] for j in listed if j["id"] == str(job.id)] == [job.metrics]


def test_a_stored_misfit_does_not_fail_the_read(
    make_client: MakeClient, db_session: Session, api_key: IssuedKey
) -> None:
    job = make_job(db_session, api_key.tenant_id)
    job.metrics = {**running_metrics(), "train_examples": "many"}
    db_session.commit()
    r = make_client().get(f"/v1/jobs/{job.id}")
    assert r.status_code == 200
    assert r.json()["metrics"] == {
        k: v for k, v in running_metrics().items() if k != "train_examples"
    }
