"""PNG plots of a job's report (`app.reports.Report`; matplotlib, Agg canvas; pyplot's global
state is not used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.reports import Report
from worker.pipelines.report_metrics import (
    metric_format,
    primary_metric,
    structured_speedups,
    variants,
)

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


def sparsity_plot(report: Report, dest: Path) -> Path:
    """Bar per encoder layer: the fraction of zero weights in its Linear layers."""
    sp = report.compressed.sparsity
    per = sp.per_encoder_layer
    keys = sorted(per, key=lambda b: (int(b), "") if b.isdigit() else (1 << 30, b))
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    ax.bar([str(k) for k in keys], [100 * per[k] for k in keys], color="#4c72b0")
    pruning = report.pruning
    target = pruning.target_sparsity if pruning is not None else None
    if target and pruning is not None and pruning.method != "none":
        ax.axhline(100 * target, color="#c44e52", linestyle="--", label="target")
        ax.legend(loc="lower right")
    ax.set_ylim(0, 100)
    ax.set_xlabel("encoder layer")
    ax.set_ylabel("sparsity (%)")
    ax.set_title(f"Sparsity per layer (overall {100 * sp.overall:.1f}%)")
    return _save(fig, dest)


def _axis(name: str) -> tuple[float, str]:
    """The scale a metric is plotted at (percent for fractions) and its axis label."""
    fmt = metric_format(name)
    return (100.0, f"dev {fmt.heading} (%)") if fmt.percent else (1.0, f"dev {fmt.heading}")


def metric_plot(report: Report, dest: Path) -> Path:
    """The task's primary metric after each pruning step where recorded (else dense against
    compressed by sparsity), and per model and runtime."""
    return _save(metric_figure(report), dest)


def metric_figure(report: Report) -> Any:
    """The figure :func:`metric_plot` saves, its axes labelled with the primary metric."""
    final = primary_metric(report.compressed)
    dense = primary_metric(report.dense)
    scale, axis = _axis(final.name)
    fig = _figure(8.0, 4.0)
    ax1 = fig.add_subplot(1, 2, 1)
    applied = report.pruning.applied if report.pruning is not None else []
    steps = [(a.step, v) for a in applied if (v := primary_metric(a).value) is not None]
    if steps:
        ax1.plot(
            [s for s, _ in steps],
            [scale * v for _, v in steps],
            marker="o",
            label="after pruning step",
        )
        if dense.value is not None:
            ax1.axhline(scale * dense.value, color="grey", linestyle=":", label="dense")
        if final.value is not None:
            ax1.axhline(scale * final.value, color="#55a868", linestyle="--", label="final")
        ax1.set_xlabel("training step")
        ax1.legend(loc="lower left", fontsize="small")
    else:
        points = [
            (sp, v)
            for sp, v in (
                (0.0, dense.value),
                (report.compressed.sparsity.overall, final.value),
            )
            if v is not None
        ]
        ax1.plot([100 * sp for sp, _ in points], [scale * v for _, v in points], marker="o")
        ax1.set_xlabel("encoder sparsity (%)")
    ax1.set_ylabel(axis)
    ax1.set_title(f"{final.label} across pruning")
    ax2 = fig.add_subplot(1, 2, 2)
    scored = [
        (v, s.value) for v in variants(report) if (s := primary_metric(v.scores)).value is not None
    ]
    ax2.barh(
        [f"{v.name}\n{v.runtime}" for v, _ in scored],
        [scale * value for _, value in scored],
        color="#4c72b0",
    )
    if metric_format(final.name).percent:
        ax2.set_xlim(0, 100)
    ax2.set_xlabel(axis)
    ax2.tick_params(axis="y", labelsize="x-small")
    ax2.set_title(f"{final.label} per model")
    return fig


def latency_size_plot(report: Report, dest: Path) -> Path:
    """Batch-1 latency and file size (raw and gzip) per model and runtime."""
    vs = variants(report)
    labels = [f"{v.name}\n{v.runtime}" for v in vs]
    fig = _figure(10.0, 4.5)
    ax1 = fig.add_subplot(1, 2, 1)
    ax1.barh(labels, [v.latency.batch_1_ms for v in vs], color="#dd8452")
    ax1.set_xlabel("CPU latency, batch 1 (ms)")
    ax1.tick_params(axis="y", labelsize="x-small")
    ax1.set_title("Latency")
    ax2 = fig.add_subplot(1, 2, 2)
    ys = list(range(len(vs)))
    ax2.barh([y - 0.2 for y in ys], [v.file_size.raw_mb for v in vs], 0.4, label="raw")
    ax2.barh([y + 0.2 for y in ys], [v.file_size.gzip_mb for v in vs], 0.4, label="gzip")
    ax2.set_yticks(ys, labels)
    ax2.tick_params(axis="y", labelsize="x-small")
    ax2.set_xlabel("size (MiB)")
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize="small")
    ax2.set_title("Model file size")
    return _save(fig, dest)


def structured_plot(report: Report, dest: Path) -> Path:
    """Method structured: the heads and the FFN neurons kept per layer after each step."""
    return _save(structured_figure(report), dest)


def structured_figure(report: Report) -> Any:
    """The figure :func:`structured_plot` saves: per step its target and the speedup its plan
    measured when planning; in the title the predicted, planned and exported speedups."""
    st = report.structured
    if st is None:
        raise ValueError("the report has no structured section")
    final = st.final
    fig = _figure(10.0, 4.0)
    steps = st.per_step
    width = 0.8 / max(1, len(steps))
    for i, (kept, per_step, total, title) in enumerate(
        (
            (final.kept_heads, [r.kept_heads for r in steps], final.heads,
             "Attention heads kept"),
            (final.kept_neurons, [r.kept_neurons for r in steps], final.neurons,
             "FFN neurons kept"),
        )
    ):  # fmt: skip
        ax = fig.add_subplot(1, 2, i + 1)
        layers = range(len(kept))
        for j, (row, counts) in enumerate(zip(steps, per_step, strict=True)):
            planned = row.plan_measured_speedup
            measured = "" if planned is None else f", measured {planned:.2f}x"
            label = f"step {row.step} ({row.target_speedup:.2f}x{measured})"
            xs = [x - 0.4 + (j + 0.5) * width for x in layers]
            ax.bar(xs, counts, width, label=label)
        per_layer = total / max(1, len(kept))
        ax.axhline(per_layer, color="grey", linestyle=":", label="dense")
        ax.set_xticks(list(layers), [str(x) for x in layers])
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("encoder layer")
        ax.set_ylabel("kept")
        ax.set_title(title)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=4, fontsize="x-small")
    fig.suptitle(f"Structured pruning to {st.target_speedup:g}x: {structured_speedups(st)}")
    return fig
