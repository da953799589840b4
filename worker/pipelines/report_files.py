"""The human-readable report files of a job: report.md and its PNG plots."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from app.reports import Report, StructuredSection
from worker.pipelines import plots
from worker.pipelines.report_md import render_markdown
from worker.pipelines.report_metrics import plan_speedup, structured_speedups

log = logging.getLogger(__name__)

REPORT_MD = "report.md"
SPARSITY_PNG = "sparsity.png"
ACCURACY_PNG = "accuracy.png"  # the primary metric's plot (the name predates the tasks)
LATENCY_SIZE_PNG = "latency_size.png"
STRUCTURED_PNG = "structured.png"  # method structured: heads and neurons kept per layer
MARKDOWN = "text/markdown"
PNG = "image/png"


def _cell(v: float | None, fmt: str = "{:.3f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def structured_markdown(st: StructuredSection) -> str:
    """The `structured` section of report.md (method structured only): the three speedups
    side by side (the latency model's prediction, the plan timed as a whole graph when
    planning, the exported file), and per step its target, prediction and measured plan."""
    final, key = st.final, st.latency_table.key
    planned = plan_speedup(st)
    ratios = [f"export / predicted {_cell(st.measured_over_predicted)}"]
    if planned is not None:
        ratios.append(f"export / plan {_cell(st.measured_over_plan)}")
    lines = [
        "", "## Structured pruning", "",
        f"Target {st.target_speedup:g}x in {st.steps} steps "
        f"({', '.join(f'{t:.3f}x' for t in st.step_targets)}); latency table of "
        f"{key.runtime} fp32 on {key.cpu}, batch {key.batch} x {key.seq_len} "
        f"tokens, threads {key.threads}; {st.latency_model.fixed_part}. Speedup "
        f"{structured_speedups(st, '{:.3f}x')} (each measured one an fp32 ONNX graph "
        f"against the dense one at batch {key.batch}; {', '.join(ratios)}); "
        f"{final.removed_parameters:,} parameters removed "
        f"({100 * final.fraction_removed:.1f}%).", "",
        "| step | target | predicted | measured when planning | rounds | heads kept per layer "
        "| neurons kept per layer |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for row in st.per_step:
        rounds = str(len(row.plan_rounds)) if row.plan_rounds else "n/a"
        lines.append(
            f"| {row.step} | {row.target_speedup:.3f}x | {row.predicted_speedup:.3f}x "
            f"| {_cell(row.plan_measured_speedup, '{:.3f}x')} | {rounds} "
            f"| {', '.join(map(str, row.kept_heads))} "
            f"| {', '.join(map(str, row.kept_neurons))} |"
        )
    return "\n".join([*lines, "", f"![heads and neurons kept]({STRUCTURED_PNG})", ""])


def write_report_files(report: Report, folder: Path) -> list[tuple[str, Path, str]]:
    """Write report.md and the plots into `folder`; returns (artifact kind, path, media type)."""
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / REPORT_MD
    structured = report.structured
    text = render_markdown(report)
    if structured is not None:
        text += structured_markdown(structured)
    md.write_text(text, encoding="utf-8")
    out = [("report_md", md, MARKDOWN)]
    drawn: list[tuple[str, str, Callable[[Report, Path], Path]]] = [
        ("plot_sparsity", SPARSITY_PNG, plots.sparsity_plot),
        ("plot_accuracy", ACCURACY_PNG, plots.metric_plot),
        ("plot_latency_size", LATENCY_SIZE_PNG, plots.latency_size_plot),
    ]
    if structured is not None:
        drawn.append(("plot_structured", STRUCTURED_PNG, plots.structured_plot))
    for kind, name, draw in drawn:
        out.append((kind, draw(report, folder / name), PNG))
    log.info("wrote %s", ", ".join(p.name for _, p, _ in out))
    return out
