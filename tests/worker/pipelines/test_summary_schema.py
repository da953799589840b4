"""What the worker writes into a job's metrics is what the API's JobMetrics schema declares
(and what tests.factories.job_metrics hands the API's tests): the summary of report.json and
the dense stage's metrics, each key a declared one or a prefixed model metric."""

from __future__ import annotations

import re
from typing import Any

from app.reports import Report
from app.schemas.job_metrics import PREFIXED_METRIC, JobMetrics
from tests.factories import job_metrics
from tests.factories.reports import report_json
from worker.pipelines.report import summary
from worker.pipelines.stages.dense import dense_metrics
from worker.pipelines.tasks.base import Metrics


def undeclared(values: dict[str, Any]) -> set[str]:
    pattern = re.compile(PREFIXED_METRIC)
    return {k for k in values if k not in JobMetrics.model_fields and not pattern.match(k)}


def test_the_summary_is_the_factorys_and_fits_the_schema() -> None:
    written = summary(Report.model_validate(report_json()))
    assert written == job_metrics.SUMMARY
    assert undeclared(written) == set()
    assert JobMetrics.model_validate(written).model_dump(mode="json") == written


def test_a_structured_jobs_summary_fits_the_schema() -> None:
    written = summary(Report.model_validate(report_json(structured=True)))
    assert undeclared(written) == set()
    assert JobMetrics.model_validate(written).model_dump(mode="json") == written


def test_the_dense_stages_metrics_are_the_factorys_and_fit_the_schema() -> None:
    written = dense_metrics(Metrics("accuracy", {"accuracy": 0.875, "macro_f1": 0.825}, 16))
    assert written == job_metrics.DENSE_STAGE
    assert undeclared(written) == set()
