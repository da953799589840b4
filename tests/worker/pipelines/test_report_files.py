"""report.md and the PNG plots, rendered from a report (`app.reports.Report`, validated from
report.json documents of this version and earlier ones; no pipeline run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.reports import Report, Scores
from worker.pipelines import plots
from worker.pipelines.report_files import write_report_files
from worker.pipelines.report_md import render_markdown as render_report
from worker.pipelines.report_metrics import (
    MetricFormat,
    format_metric,
    metric_format,
    primary_metric,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def render_markdown(data: dict[str, Any]) -> str:
    """report.md of a report.json document (validated as every reader loads it)."""
    return render_report(Report.model_validate(data))


def metric_figure(data: dict[str, Any]) -> Any:
    return plots.metric_figure(Report.model_validate(data))


def _lat(b1: float, b32: float) -> dict[str, float]:
    return {"batch_1_ms": b1, "batch_32_ms": b32}


def _onnx(acc: float, b1: float) -> dict[str, Any]:
    return {
        "accuracy": acc,
        "macro_f1": acc,
        "file_size": {"raw_mb": 2.0, "gzip_mb": 1.0},
        "latency_cpu_ms": {**_lat(b1, 8 * b1), "throughput_b32_per_s": 1.0},
        "parity": {
            "reference": "pytorch_fp32",
            "agreement": 1.0,
            "max_abs_logit_diff": 1e-6,
            "n": 8,
        },
    }


def report(*, with_onnx: bool = True, step_accuracy: bool = True) -> dict[str, Any]:
    applied = [{"step": 2, "sparsity": 0.5}, {"step": 4, "sparsity": 0.8}]
    if step_accuracy:
        applied[0]["accuracy"], applied[1]["accuracy"] = 0.75, 0.625
    out: dict[str, Any] = {
        "job_id": "j1",
        "spec": {"quantization": {"method": "none"}},
        "model": {"source": "builtin:minilm"},
        "dataset": {"name": "sst2", "train_examples": 10, "dev_examples": 8},
        "max_length": 16,
        "device": "cpu",
        "dense": {
            "accuracy": 0.875,
            "macro_f1": 0.87,
            "encoder_sparsity": 0.0,
            "parameters": 1000,
            "file_size": {"raw_mb": 4.0, "gzip_mb": 3.5},
            "latency_cpu_ms": _lat(10.0, 80.0),
        },
        "compressed": {
            "accuracy": 0.8125,
            "macro_f1": 0.8,
            "parameters": 900,
            "kept_layers": [0, 2],
            "sparsity": {
                "overall": 0.8,
                "per_layer": {"bert.encoder.layer.0.output.dense": 0.8},
                "per_encoder_layer": {"1": 0.81, "0": 0.79},
            },
            "file_size": {"raw_mb": 4.0, "gzip_mb": 1.5},
            "latency_cpu_ms": _lat(5.0, 40.0),
        },
        "int8": None,
        "pruning": {
            "method": "magnitude",
            "target_sparsity": 0.8,
            "structure": "unstructured",
            "scope": "global",
            "schedule": "gradual",
            "applied": applied,
        },
        "stage_seconds": {"load": 1.0, "recover": 12.5},
        "total_seconds": 13.5,
    }
    if with_onnx:
        out["onnx"] = {"dense_fp32": _onnx(0.875, 4.0), "fp32": _onnx(0.8125, 2.0)}
        out["onnx"]["int8"] = {**_onnx(0.75, 1.0), "parity": None}
    return out


def test_markdown_tables() -> None:
    md = render_markdown(report())
    assert "| model | runtime | accuracy | macro-F1 | encoder sparsity |" in md
    assert "| compressed | ONNX Runtime fp32 | 81.25% |" in md
    assert "2.00x" in md  # ONNX fp32 vs ONNX dense at batch 1: 4 ms / 2 ms
    assert "| recover | 12.50 |" in md
    assert "| 2 | 50.00% | 75.00% |" in md
    lines = md.splitlines()
    layer_rows = [line for line in lines if line.startswith(("| 0 |", "| 1 |"))]
    assert layer_rows == ["| 0 | 0 | 79.00% |", "| 1 | 2 | 81.00% |"]


def test_markdown_names_the_cpu_the_latencies_were_taken_on() -> None:
    rep = report()
    assert "Measured on" not in render_markdown(rep)
    rep["cpu"] = {
        "model": "AMD EPYC",
        "cores": 2,
        "threads": 1,
        "int8_instructions": ["avx2", "avx512_vnni"],
    }
    md = render_markdown(rep)
    assert "Measured on AMD EPYC, 2 cores, timed at 1 thread(s); int8 instructions: avx2, " in md


def test_markdown_gives_the_int8_accuracy_at_batch_1() -> None:
    rep = report()
    assert "one example at a time" not in render_markdown(rep)
    rep["onnx"]["int8"]["eval_batch_size"] = 32
    rep["onnx"]["int8"]["batch_1"] = {"accuracy": 0.5, "macro_f1": 0.4, "eval_examples": 8}
    md = render_markdown(rep)
    assert (
        "one example at a time (as a batch-1 server runs it) scores accuracy 50.00% "
        "(macro-F1 40.00%) against 75.00% in evaluation batches of 32" in md
    )


def test_markdown_states_the_compaction() -> None:
    rep = report()
    layers = [
        {"layer": 0, "compacted": True, "neurons": 32, "kept": 20, "constant": 10, "dead": 2},
        {"layer": 1, "compacted": True, "neurons": 32, "kept": 32, "constant": 0, "dead": 0},
    ]
    rep["onnx"]["compaction"] = {
        "applied": True,
        "ffn_neurons": 64,
        "ffn_neurons_kept": 52,
        "layers": layers,
    }
    assert "keep 52 of 64 feed-forward neurons (per layer: 20, 32)" in render_markdown(rep)
    rep["onnx"]["compaction"] = {"applied": False, "ffn_neurons": 64, "ffn_neurons_kept": 64}
    assert "feed-forward neurons" not in render_markdown(rep)


def test_markdown_without_onnx_or_step_accuracy() -> None:
    md = render_markdown(report(with_onnx=False, step_accuracy=False))
    assert "ONNX" not in md and "| 4 | 80.00% | n/a |" in md


def test_report_files_are_markdown_and_png(tmp_path: Path) -> None:
    for i, rep in enumerate((report(), report(with_onnx=False, step_accuracy=False))):
        files = write_report_files(Report.model_validate(rep), tmp_path / str(i))
        kinds = {k: (p, media) for k, p, media in files}
        assert set(kinds) == {"report_md", "plot_sparsity", "plot_accuracy", "plot_latency_size"}
        assert kinds["report_md"][0].read_text(encoding="utf-8").startswith("# Compression report")
        for kind in ("plot_sparsity", "plot_accuracy", "plot_latency_size"):
            path, media = kinds[kind]
            assert media == "image/png" and path.read_bytes()[:8] == PNG_SIGNATURE
            assert path.stat().st_size > 1000


# Reports of the four tasks as report.py writes them now: every eval block names its primary
# metric and holds each scalar by name; parity counts a `unit` and has `max_abs_diff`.
SCALARS: dict[str, tuple[str, dict[str, float]]] = {
    "sequence_classification": ("accuracy", {"accuracy": 0.9, "macro_f1": 0.85}),
    "regression": ("spearman", {"spearman": 0.871, "pearson": 0.8804, "mse": 0.5126}),
    "token_classification": (
        "entity_f1",
        {
            "entity_f1": 0.8471,
            "entity_precision": 0.9,
            "entity_recall": 0.8,
            "token_accuracy": 0.97,
        },
    ),
    "question_answering": ("f1", {"f1": 0.81, "exact_match": 0.72}),
}
UNITS = {
    "sequence_classification": "examples",
    "regression": "examples",
    "token_classification": "tokens",
    "question_answering": "questions",
}


def scores(task: str, shift: float = 0.0, **extra: Any) -> dict[str, Any]:
    """An eval block of `task` with every scalar `shift` above the table's."""
    primary, values = SCALARS[task]
    moved = {k: round(v + shift, 6) for k, v in values.items()}
    return {"primary_metric": {"name": primary, "value": moved[primary]}, **moved, **extra}


def task_onnx(task: str, b1: float, parity: dict[str, Any] | None) -> dict[str, Any]:
    return {
        **scores(task, eval_examples=200),
        "file_size": {"raw_mb": 2.0, "gzip_mb": 1.0},
        "latency_cpu_ms": _lat(b1, 8 * b1),
        "speedup_vs_dense": {"batch_1": 2.0, "batch_32": 2.0},
        "parity": dict(parity) if parity else None,
    }


def task_report(task: str) -> dict[str, Any]:
    """A new-style report of `task` (no old keys anywhere)."""
    rep = report()
    primary = SCALARS[task][0]
    rep["task"] = task
    for key, shift in (("dense", 0.05), ("compressed", 0.0)):
        for name in ("accuracy", "macro_f1"):
            del rep[key][name]
        rep[key] |= scores(task, shift, eval_examples=200)
    for step, value in zip(rep["pruning"]["applied"], (0.75, 0.625), strict=True):
        del step["accuracy"]
        step["primary_metric"] = {"name": primary, "value": value}
    parity = {
        "reference": "pytorch_fp32",
        "agreement": 0.995,
        "max_abs_diff": 0.0123,
        "n": 200,
        "unit": UNITS[task],
    }
    rep["onnx"] = {
        "dense_fp32": task_onnx(task, 4.0, parity),
        "fp32": task_onnx(task, 2.0, parity),
        "int8": {**task_onnx(task, 1.0, None), "eval_batch_size": 32},
    }
    return rep


def row_of(md: str, start: str) -> str:
    return next(line for line in md.splitlines() if line.startswith(start))


def test_primary_metric_reads_new_and_old_blocks() -> None:
    new = Scores.model_validate(
        {"primary_metric": {"name": "exact_match", "value": 0.72}, "f1": 0.81}
    )
    assert primary_metric(new) == ("Exact match", 0.72, "72.00%", "exact_match")
    assert primary_metric(Scores(accuracy=0.8125, macro_f1=0.8)) == (
        "Accuracy", 0.8125, "81.25%", "accuracy"
    )  # fmt: skip
    assert primary_metric(None) == ("Accuracy", None, "n/a", "accuracy")
    spearman = Scores.model_validate({"primary_metric": {"name": "spearman", "value": 0.87149}})
    assert primary_metric(spearman).formatted == "0.871"
    assert format_metric("mse", 0.51264) == "0.513" and format_metric("entity_f1", 0.5) == "50.00%"
    assert metric_format("bleu") == MetricFormat("bleu", "bleu", False)
    assert metric_format("f1").label == "F1" and metric_format("token_accuracy").percent


def test_classification_report_with_primary_metric_reads_as_before() -> None:
    rep = task_report("sequence_classification")
    rep["compressed"]["per_class"] = {
        "neg": {"precision": 0.8, "recall": 1.0, "f1": 0.8889, "support": 4.0},
        "pos": {"precision": 1.0, "recall": 0.75, "f1": 0.8571, "support": 4.0},
    }
    rep["dense"]["per_class"] = {"neg": {"f1": 0.9}, "pos": {"f1": 0.95}}
    md = render_markdown(rep)
    assert "| model | runtime | accuracy | macro-F1 | encoder sparsity |" in md
    assert row_of(md, "| compressed | PyTorch fp32 |").startswith(
        "| compressed | PyTorch fp32 | 90.00% | 85.00% | 80.00% |"
    )
    assert row_of(md, "| dense | PyTorch fp32 |").startswith("| dense | PyTorch fp32 | 95.00% |")
    assert "| class | precision | recall | F1 | dense F1 | support |" in md
    assert "| neg | 80.00% | 100.00% | 88.89% | 90.00% | 4 |" in md
    assert "| pos | 100.00% | 75.00% | 85.71% | 95.00% | 4 |" in md
    assert "| training step | target sparsity | dev accuracy after pruning |" in md
    assert "| 2 | 50.00% | 75.00% |" in md
    assert "| compressed fp32 | pytorch_fp32 | 99.50% | 0.0123 | 200 examples |" in md
    assert "- task: sequence_classification" in md and "Per entity type" not in md


def test_regression_report_shows_correlations_as_numbers() -> None:
    rep = task_report("regression")
    rep["onnx"]["fp32"]["parity"] |= {"pearson": 0.99912}
    md = render_markdown(rep)
    assert "| model | runtime | Spearman | Pearson | MSE | encoder sparsity |" in md
    assert row_of(md, "| compressed | PyTorch fp32 |").startswith(
        "| compressed | PyTorch fp32 | 0.871 | 0.880 | 0.513 | 80.00% |"
    )
    assert row_of(md, "| dense | ONNX Runtime fp32 |").startswith(
        "| dense | ONNX Runtime fp32 | 0.871 | 0.880 | 0.513 |"
    )
    assert (
        "| compressed fp32 | pytorch_fp32 | 99.50% (Pearson 0.9991) | 0.0123 | 200 examples |" in md
    )
    assert "| dense fp32 | pytorch_fp32 | 99.50% | 0.0123 | 200 examples |" in md
    assert "Spearman is the task's primary metric" in md
    assert "| training step | target sparsity | dev Spearman after pruning |" in md
    assert "| 2 | 50.00% | 0.750 |" in md and "| 4 | 80.00% | 0.625 |" in md
    assert "![Spearman across pruning steps](accuracy.png)" in md
    assert "Per class" not in md and "Teacher cache" not in md


def test_token_classification_report_has_a_per_type_table() -> None:
    rep = task_report("token_classification")
    rep["compressed"]["per_type"] = {
        "PER": {"precision": 0.9, "recall": 0.8, "f1": 0.847059, "support": 120},
        "LOC": {"precision": 0.5, "recall": 1.0, "f1": 0.666667, "support": 3},
    }
    md = render_markdown(rep)
    header = (
        "| model | runtime | entity F1 | precision | recall | token accuracy | encoder sparsity |"
    )
    assert header in md
    assert row_of(md, "| compressed | PyTorch fp32 |").startswith(
        "| compressed | PyTorch fp32 | 84.71% | 90.00% | 80.00% | 97.00% | 80.00% |"
    )
    assert "## Per entity type" in md and "## Per class" not in md
    assert "| entity type | precision | recall | F1 | dense F1 | support |" in md
    assert "| PER | 90.00% | 80.00% | 84.71% | n/a | 120 |" in md
    assert "| LOC | 50.00% | 100.00% | 66.67% | n/a | 3 |" in md
    assert "| compressed fp32 | pytorch_fp32 | 99.50% | 0.0123 | 200 tokens |" in md
    assert "| 4 | 80.00% | 62.50% |" in md and "dev entity F1 after pruning" in md


def test_question_answering_report_with_batch_1_and_teacher_cache() -> None:
    rep = task_report("question_answering")
    rep["onnx"]["int8"]["batch_1"] = {**scores("question_answering", -0.01), "eval_examples": 200}
    rep["teacher_cache"] = {
        "enabled": True,
        "max_bytes": 512 * 1024 * 1024,
        "items": 4961,
        "bytes": 3 * 1024 * 1024,
        "hit_batches": 900,
        "teacher_batches": 100,
        "full": False,
    }
    md = render_markdown(rep)
    assert "| model | runtime | F1 | exact match | encoder sparsity |" in md
    assert row_of(md, "| compressed int8 | ONNX Runtime int8 |").startswith(
        "| compressed int8 | ONNX Runtime int8 | 81.00% | 72.00% | 80.00% |"
    )
    assert "| compressed fp32 | pytorch_fp32 | 99.50% | 0.0123 | 200 questions |" in md
    assert "scores F1 80.00% (exact match 71.00%) against 81.00% in evaluation batches of 32" in md
    assert (
        "The teacher's outputs were cached for 4,961 items (3.00 MiB): 900 hits and 100 misses "
        "(hit rate 90.00%)." in md
    )
    rep["teacher_cache"] = {"enabled": False, "max_bytes": 0, "items": 0, "bytes": 0}
    assert "The teacher's outputs were not cached." in render_markdown(rep)


def test_old_report_reads_accuracy_and_logit_diff() -> None:
    md = render_markdown(report())
    assert "- task: sequence_classification" in md
    assert "| compressed fp32 | pytorch_fp32 | 100.00% | 1e-06 | 8 examples |" in md
    assert "![accuracy across pruning steps](accuracy.png)" in md
    assert "Teacher cache" not in md and "Per class" not in md


@pytest.mark.parametrize(
    ("task", "axis"),
    [
        (None, "dev accuracy (%)"),
        ("sequence_classification", "dev accuracy (%)"),
        ("regression", "dev Spearman"),
        ("token_classification", "dev entity F1 (%)"),
        ("question_answering", "dev F1 (%)"),
    ],
)
def test_metric_plot_is_labelled_with_the_primary_metric(task: str | None, axis: str) -> None:
    rep = report() if task is None else task_report(task)
    fig = metric_figure(rep)
    steps, per_model = fig.axes
    assert steps.get_ylabel() == axis and per_model.get_xlabel() == axis
    scale = 1.0 if task == "regression" else 100.0
    assert list(steps.lines[0].get_ydata()) == pytest.approx(
        [75.0 * scale / 100, 62.5 * scale / 100]
    )
    final = (
        report()["compressed"]["accuracy"] if task is None else SCALARS[task][1][SCALARS[task][0]]
    )
    widths = [bar.get_width() for bar in per_model.patches]
    assert widths[1] == pytest.approx(scale * final)  # the compressed PyTorch model
    assert len(widths) == 5  # dense, compressed, and the three ONNX files


def test_report_files_for_every_task(tmp_path: Path) -> None:
    for task in SCALARS:
        files = write_report_files(Report.model_validate(task_report(task)), tmp_path / task)
        for kind, path, media in files:
            assert path.stat().st_size > 0
            if media == "image/png":
                assert path.read_bytes()[:8] == PNG_SIGNATURE, kind
