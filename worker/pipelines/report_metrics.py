"""How the report's metrics are named and printed, and the measured models it compares: what
report.md, the plots and the demo read of a report (`app.reports.Report`).

Every task's eval blocks name their primary metric; blocks written before there were several
tasks have none, and their primary metric is accuracy (`Scored.primary`). :data:`METRICS` says
how each metric is named and printed, so no reader hard-wires `accuracy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from app.reports import (
    FileSize,
    Latency,
    PrimaryMetric,
    Report,
    Scored,
    Scores,
    StructuredSection,
)
from app.reports.scores import DEFAULT_METRIC

NA = "n/a"


@dataclass(frozen=True)
class MetricFormat:
    label: str  # its name on its own ("Exact match": a card, a plot title)
    heading: str  # its name in a table header or a sentence ("exact match")
    percent: bool  # a fraction shown as a percentage; otherwise a number to 3 decimals


# Known metrics, in the order a task's scalars are shown (the primary one always comes first);
# the names are app.reports.METRIC_NAMES.
METRICS: dict[str, MetricFormat] = {
    "accuracy": MetricFormat("Accuracy", "accuracy", True),
    "macro_f1": MetricFormat("Macro-F1", "macro-F1", True),
    "entity_f1": MetricFormat("Entity F1", "entity F1", True),
    "entity_precision": MetricFormat("Precision", "precision", True),
    "entity_recall": MetricFormat("Recall", "recall", True),
    "token_accuracy": MetricFormat("Token accuracy", "token accuracy", True),
    "f1": MetricFormat("F1", "F1", True),
    "exact_match": MetricFormat("Exact match", "exact match", True),
    "spearman": MetricFormat("Spearman", "Spearman", False),
    "pearson": MetricFormat("Pearson", "Pearson", False),
    "mse": MetricFormat("MSE", "MSE", False),
}


class ShownMetric(NamedTuple):
    label: str
    value: float | None
    formatted: str
    name: str


def metric_format(name: str) -> MetricFormat:
    """How `name` is shown; a metric not in :data:`METRICS` keeps its name and 3 decimals."""
    return METRICS.get(name) or MetricFormat(name, name, False)


def pct(v: float | None) -> str:
    return NA if v is None else f"{100 * float(v):.2f}%"


def format_metric(name: str, value: float | None) -> str:
    """`value` of metric `name` as text: `81.25%` for a fraction, `0.873` otherwise."""
    if value is None:
        return NA
    return pct(value) if metric_format(name).percent else f"{float(value):.3f}"


def primary_metric(block: Scored | None) -> ShownMetric:
    """The primary metric of an eval block (or pruning step) as (label, value, formatted,
    name); no block at all reads as an unknown accuracy."""
    named = block.primary() if block is not None else PrimaryMetric(name=DEFAULT_METRIC)
    name, value = named.name, named.value
    return ShownMetric(metric_format(name).label, value, format_metric(name, value), name)


def metric_names(block: Scores) -> list[str]:
    """The metrics to show for a block: its primary one, then its other known scalars."""
    primary = primary_metric(block).name
    held = block.scalars()
    return [primary, *(n for n in METRICS if n != primary and n in held)]


class Variant(NamedTuple):
    """One measured model: its name, runtime, eval block and measurements."""

    name: str
    runtime: str
    scores: Scores
    sparsity: float | None
    parameters: int
    file_size: FileSize
    latency: Latency


def variants(report: Report) -> list[Variant]:
    """The PyTorch models (dense, compressed, int8) and the ONNX files, in that order."""
    dense, comp = report.dense, report.compressed
    dense_sp, sparsity = dense.encoder_sparsity, comp.sparsity.overall
    out = [
        Variant("dense", "PyTorch fp32", dense, dense_sp, dense.parameters, dense.file_size,
                dense.latency_cpu_ms),
        Variant("compressed", "PyTorch fp32", comp, sparsity, comp.parameters, comp.file_size,
                comp.latency_cpu_ms),
    ]  # fmt: skip
    if report.int8 is not None:
        i8 = report.int8
        out.append(Variant("compressed int8", "PyTorch int8", i8, sparsity, comp.parameters,
                           i8.file_size, i8.latency_cpu_ms))  # fmt: skip
    onnx = report.onnx
    if onnx is None:
        return out
    for block, name, sp, params, runtime in (
        (onnx.dense_fp32, "dense", dense_sp, dense.parameters, "fp32"),
        (onnx.fp32, "compressed", sparsity, comp.parameters, "fp32"),
        (onnx.int8, "compressed int8", sparsity, comp.parameters, "int8"),
    ):
        if block is not None:
            out.append(Variant(name, f"ONNX Runtime {runtime}", block, sp, params,
                               block.file_size, block.latency_cpu_ms))  # fmt: skip
    return out


def plan_speedup(st: StructuredSection) -> float | None:
    """Method structured: the last step's plan as timed when planning (its compacted graph
    against the dense one); None in reports from before the planning was measured."""
    planned = st.plan_measured_speedup
    return st.final.plan_measured_speedup if planned is None else planned


def structured_speedups(st: StructuredSection, fmt: str = "{:.2f}x") -> str:
    """Method structured's speedups side by side: the latency model's prediction, the plan
    measured when planning (left out where the report has none) and the exported ONNX file at
    the section's precision measured against the dense fp32 one (n/a where the export measured
    none)."""

    def shown(v: float | None) -> str:
        return NA if v is None else fmt.format(v)

    parts = [f"predicted {shown(st.final.predicted_speedup)}"]
    planned = plan_speedup(st)
    if planned is not None:
        parts.append(f"measured {shown(planned)} when planning")
    where = "the export" if st.precision == "fp32" else f"the export's {st.precision} file"
    parts.append(f"{shown(st.measured_speedup)} measured in {where}")
    return ", ".join(parts)
