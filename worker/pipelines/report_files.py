"""The human-readable report files of a job: report.md and its PNG plots."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from worker.pipelines import plots
from worker.pipelines.report_md import render_markdown

log = logging.getLogger(__name__)

REPORT_MD = "report.md"
SPARSITY_PNG = "sparsity.png"
ACCURACY_PNG = "accuracy.png"  # the primary metric's plot (the name predates the tasks)
LATENCY_SIZE_PNG = "latency_size.png"
MARKDOWN = "text/markdown"
PNG = "image/png"


def write_report_files(report: dict[str, Any], folder: Path) -> list[tuple[str, Path, str]]:
    """Write report.md and the plots into `folder`; returns (artifact kind, path, media type)."""
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / REPORT_MD
    md.write_text(render_markdown(report), encoding="utf-8")
    out = [("report_md", md, MARKDOWN)]
    for kind, name, draw in (
        ("plot_sparsity", SPARSITY_PNG, plots.sparsity_plot),
        ("plot_accuracy", ACCURACY_PNG, plots.metric_plot),
        ("plot_latency_size", LATENCY_SIZE_PNG, plots.latency_size_plot),
    ):
        out.append((kind, draw(report, folder / name), PNG))
    log.info("wrote %s", ", ".join(p.name for _, p, _ in out))
    return out
