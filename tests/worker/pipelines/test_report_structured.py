"""Method structured in report.md and its plot: the speedup the plan measured when planning
shown beside the latency model's prediction and the export's measurement (the prediction
alone can sit far from what was timed), per step and overall; a report from before the
planning was measured shows what it has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.reports import Report
from tests.factories.reports import report_json
from tests.worker.pipelines.test_report_files import PNG_SIGNATURE, row_of
from worker.pipelines import plots
from worker.pipelines.report_files import structured_markdown, write_report_files
from worker.pipelines.report_md import render_markdown


def structured_report(*, planned: bool = True) -> Report:
    data = report_json(structured=True)
    st = data["structured"]
    if not planned:  # as before the plans were timed (and no ONNX measurement either)
        for key in ("plan_measurement", "plan_measured_speedup", "measured_over_plan",
                    "plan_rounds"):  # fmt: skip
            del st[key]
        del st["final"]["plan_measured_speedup"]
        st["per_step"] = [{k: v for k, v in r.items() if not k.startswith("plan_")}
                          for r in st["per_step"]]  # fmt: skip
        st["measured_speedup"] = st["measured_over_predicted"] = None
    return Report.model_validate(data)


def test_the_markdown_shows_the_planned_speedup_beside_the_others(tmp_path: Path) -> None:
    files = {k: p for k, p, _ in write_report_files(structured_report(), tmp_path)}
    md = files["report_md"].read_text(encoding="utf-8")
    assert (
        "- pruning: structured (heads and neurons) to 1.5x in 2 steps: predicted 1.52x, "
        "measured 1.45x when planning, 1.40x measured in the export"
    ) in md
    assert (
        "Speedup predicted 1.520x, measured 1.450x when planning, 1.400x measured in the "
        "export (each measured one an fp32 ONNX graph against the dense one at batch 1; "
        "export / predicted 0.921, export / plan 0.966)"
    ) in md
    section = md[md.index("## Structured pruning") :]
    assert "| step | target | predicted | measured when planning | rounds |" in section
    assert row_of(section, "| 1 |") == "| 1 | 1.225x | 1.250x | 1.210x | 1 | 2, 1 | 48, 40 |"
    assert row_of(section, "| 2 |") == "| 2 | 1.500x | 1.520x | 1.450x | 2 | 2, 1 | 32, 24 |"
    assert files["plot_structured"].read_bytes()[:8] == PNG_SIGNATURE


def test_a_report_from_before_the_planning_shows_what_it_has() -> None:
    report = structured_report(planned=False)
    md = render_markdown(report)
    assert "in 2 steps: predicted 1.52x, n/a measured in the export\n" in md
    assert "when planning" not in md
    st = report.structured
    assert st is not None
    section = structured_markdown(st)
    assert "export / predicted n/a)" in section and "export / plan" not in section
    assert row_of(section, "| 2 |") == "| 2 | 1.500x | 1.520x | n/a | n/a | 2, 1 | 32, 24 |"


def steps_legend(ax: Any) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts() if t.get_text() != "dense"]


def test_the_plot_names_each_steps_measured_plan() -> None:
    fig = plots.structured_figure(structured_report())
    assert fig._suptitle.get_text() == (
        "Structured pruning to 1.5x: predicted 1.52x, measured 1.45x when planning, "
        "1.40x measured in the export"
    )
    for ax in fig.axes:
        assert steps_legend(ax) == [
            "step 1 (1.22x, measured 1.21x)", "step 2 (1.50x, measured 1.45x)"
        ]  # fmt: skip
    old = plots.structured_figure(structured_report(planned=False))
    assert steps_legend(old.axes[0]) == ["step 1 (1.22x)", "step 2 (1.50x)"]
