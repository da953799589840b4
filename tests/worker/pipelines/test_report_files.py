"""report.md and the PNG plots, rendered from a report dict (no pipeline run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.pipelines.report_files import write_report_files
from worker.pipelines.report_md import render_markdown

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
    assert "one example at a time (as a batch-1 server runs it) scores 50.00% (macro-F1 " in md
    assert "against 75.00% in evaluation batches of 32" in md


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
        files = write_report_files(rep, tmp_path / str(i))
        kinds = {k: (p, media) for k, p, media in files}
        assert set(kinds) == {"report_md", "plot_sparsity", "plot_accuracy", "plot_latency_size"}
        assert kinds["report_md"][0].read_text(encoding="utf-8").startswith("# Compression report")
        for kind in ("plot_sparsity", "plot_accuracy", "plot_latency_size"):
            path, media = kinds[kind]
            assert media == "image/png" and path.read_bytes()[:8] == PNG_SIGNATURE
            assert path.stat().st_size > 1000
