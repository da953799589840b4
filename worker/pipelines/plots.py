"""PNG plots of a job's report (matplotlib, Agg canvas; pyplot's global state is not used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.pipelines.report_md import variants

DPI = 100


def _figure(width: float = 6.4, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(str(dest), format="png", metadata={"Software": None})
    return dest


def sparsity_plot(report: dict[str, Any], dest: Path) -> Path:
    """Bar per encoder layer: the fraction of zero weights in its Linear layers."""
    sp = report["compressed"]["sparsity"]
    per = sp.get("per_encoder_layer") or {}
    keys = sorted(per, key=lambda b: (int(b), "") if b.isdigit() else (1 << 30, b))
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    ax.bar([str(k) for k in keys], [100 * per[k] for k in keys], color="#4c72b0")
    target = (report.get("pruning") or {}).get("target_sparsity")
    if target and (report.get("pruning") or {}).get("method") != "none":
        ax.axhline(100 * target, color="#c44e52", linestyle="--", label="target")
        ax.legend(loc="lower right")
    ax.set_ylim(0, 100)
    ax.set_xlabel("encoder layer")
    ax.set_ylabel("sparsity (%)")
    ax.set_title(f"Sparsity per layer (overall {100 * sp['overall']:.1f}%)")
    return _save(fig, dest)


def accuracy_plot(report: dict[str, Any], dest: Path) -> Path:
    """Dev accuracy across pruning steps where recorded, and dense vs final models."""
    fig = _figure(8.0, 4.0)
    ax1 = fig.add_subplot(1, 2, 1)
    applied = (report.get("pruning") or {}).get("applied") or []
    steps = [a for a in applied if a.get("accuracy") is not None]
    dense_acc = report["dense"]["accuracy"]
    if steps:
        ax1.plot(
            [a["step"] for a in steps],
            [100 * a["accuracy"] for a in steps],
            marker="o",
            label="after pruning step",
        )
        ax1.axhline(100 * dense_acc, color="grey", linestyle=":", label="dense")
        ax1.axhline(
            100 * report["compressed"]["accuracy"], color="#55a868", linestyle="--", label="final"
        )
        ax1.set_xlabel("training step")
        ax1.legend(loc="lower left", fontsize="small")
    else:
        xs = [0.0, 100 * report["compressed"]["sparsity"]["overall"]]
        ax1.plot(xs, [100 * dense_acc, 100 * report["compressed"]["accuracy"]], marker="o")
        ax1.set_xlabel("encoder sparsity (%)")
    ax1.set_ylabel("dev accuracy (%)")
    ax1.set_title("Accuracy across pruning")
    ax2 = fig.add_subplot(1, 2, 2)
    vs = variants(report)
    labels = [f"{v['name']}\n{v['runtime']}" for v in vs]
    ax2.barh(labels, [100 * v["accuracy"] for v in vs], color="#4c72b0")
    ax2.set_xlim(0, 100)
    ax2.set_xlabel("dev accuracy (%)")
    ax2.tick_params(axis="y", labelsize="x-small")
    ax2.set_title("Accuracy per model")
    return _save(fig, dest)


def latency_size_plot(report: dict[str, Any], dest: Path) -> Path:
    """Batch-1 latency and file size (raw and gzip) per model and runtime."""
    vs = variants(report)
    labels = [f"{v['name']}\n{v['runtime']}" for v in vs]
    fig = _figure(10.0, 4.5)
    ax1 = fig.add_subplot(1, 2, 1)
    ax1.barh(labels, [v["latency"]["batch_1_ms"] for v in vs], color="#dd8452")
    ax1.set_xlabel("CPU latency, batch 1 (ms)")
    ax1.tick_params(axis="y", labelsize="x-small")
    ax1.set_title("Latency")
    ax2 = fig.add_subplot(1, 2, 2)
    ys = list(range(len(vs)))
    ax2.barh([y - 0.2 for y in ys], [v["file_size"]["raw_mb"] for v in vs], 0.4, label="raw")
    ax2.barh([y + 0.2 for y in ys], [v["file_size"]["gzip_mb"] for v in vs], 0.4, label="gzip")
    ax2.set_yticks(ys, labels)
    ax2.tick_params(axis="y", labelsize="x-small")
    ax2.set_xlabel("size (MiB)")
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize="small")
    ax2.set_title("Model file size")
    return _save(fig, dest)
