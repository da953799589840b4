"""What report.md and the plots read of a report model: the metric names and formats, the
measured models, the teacher cache and the structured section (no pipeline run)."""

from __future__ import annotations

from pathlib import Path

from app.reports import METRIC_NAMES, Report
from tests.factories.reports import report_json
from worker.pipelines.plots import metric_figure
from worker.pipelines.report_files import write_report_files
from worker.pipelines.report_md import render_markdown
from worker.pipelines.report_metrics import METRICS, metric_names, variants

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_every_metric_the_report_holds_has_a_format() -> None:
    assert tuple(METRICS) == METRIC_NAMES


def test_variants_are_the_torch_models_then_the_onnx_files() -> None:
    report = Report.model_validate(report_json())
    vs = variants(report)
    assert [(v.name, v.runtime) for v in vs] == [
        ("dense", "PyTorch fp32"),
        ("compressed", "PyTorch fp32"),
        ("compressed int8", "PyTorch int8"),
        ("dense", "ONNX Runtime fp32"),
        ("compressed", "ONNX Runtime fp32"),
        ("compressed int8", "ONNX Runtime int8"),
    ]
    assert vs[4].scores is report.onnx.fp32 if report.onnx else False
    assert [v.sparsity for v in vs] == [0.0, 0.6, 0.6, 0.0, 0.6, 0.6]
    assert vs[5].latency.batch_1_ms == 0.2 and vs[2].file_size.raw_mb == 1.1
    assert metric_names(report.compressed) == ["accuracy", "macro_f1"]


def test_markdown_of_a_current_report() -> None:
    md = render_markdown(Report.model_validate(report_json()))
    assert "- task: sequence_classification" in md and "- quantization: dynamic_int8" in md
    assert "- pruning: obert to 80.00% (unstructured, global, gradual schedule)" in md
    # the cache's batch counts as report.py writes them (hit_batches, teacher_batches)
    assert "48 items (0.00 MiB): 6 hits and 2 misses (hit rate 75.00%)." in md
    assert "keep 48 of 64 feed-forward neurons (per layer: 48)" in md
    assert "| compressed int8 | ONNX Runtime int8 | 75.00% | 70.00% |" in md
    assert "| 2 | 52.50% | 80.00% |" in md and "| 4 | 60.00% | n/a |" in md
    # an int8 job says which int8 file to deploy and what the PyTorch one needs
    assert "To deploy int8, use `model-int8.onnx`" in md and "needs Scalpel's code" in md


def test_markdown_of_a_job_without_int8_names_no_int8_file() -> None:
    body = report_json()
    body["spec"]["quantization"] = {"method": "none"}
    assert "model-int8.onnx" not in render_markdown(Report.model_validate(body))


def test_report_files_of_a_structured_report(tmp_path: Path) -> None:
    report = Report.model_validate(report_json(structured=True))
    files = {kind: path for kind, path, _ in write_report_files(report, tmp_path)}
    assert files["plot_structured"].read_bytes()[:8] == PNG_SIGNATURE
    md = files["report_md"].read_text(encoding="utf-8")
    assert "- pruning: structured (heads and neurons) to 1.5x in 2 steps: predicted 1.52x" in md
    assert "Target 1.5x in 2 steps (1.225x, 1.500x)" in md
    assert "1.400x measured in the export" in md and "export / predicted 0.921" in md
    assert "| 2 | 1.500x | 1.520x | 1.450x | 2 | 2, 1 | 32, 24 |" in md


def test_metric_figure_of_a_current_report() -> None:
    steps, per_model = metric_figure(Report.model_validate(report_json())).axes
    assert list(steps.lines[0].get_ydata()) == [80.0]  # the one step with a metric
    assert [bar.get_width() for bar in per_model.patches] == [87.5, 81.25, 75.0, 87.5, 81.25, 75.0]
