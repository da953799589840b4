"""Human output: job tables, one-line summaries and the live progress of `watch`."""

from __future__ import annotations

from typing import Any, TypeGuard

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

JSON = dict[str, Any]
STATUS_STYLE = {"queued": "cyan", "running": "yellow", "succeeded": "green", "failed": "red",
                "canceled": "magenta"}  # fmt: skip


def scalar(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


PRIMARY = "primary_metric"  # a job's {name, value} metrics end with this


def _named(value: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict) and isinstance(value.get("name"), str) and "value" in value


def _flat(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics with each {name, value} entry under its own name: `primary_metric` as `f1`,
    `onnx_primary_metric` as `onnx_f1` (dropped where that key is there already)."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if key.endswith(PRIMARY) and _named(value):
            flat = key.removesuffix(PRIMARY) + value["name"]
            if flat not in metrics:
                out[flat] = value["value"]
        else:
            out[key] = value
    return out


def _primary_first(metrics: dict[str, Any]) -> dict[str, Any]:
    """The compressed and dense models' primary metric first (accuracy on jobs from before
    there were several tasks), then the rest in the job's order."""
    named = metrics.get(PRIMARY)
    name = str(named["name"]) if _named(named) else "accuracy"
    flat = _flat(metrics)
    lead = {k: flat[k] for k in (name, f"dense_{name}") if k in flat}
    return {**lead, **{k: v for k, v in flat.items() if k not in lead}}


def metrics_line(metrics: dict[str, Any] | None, limit: int = 6) -> str:
    """Top-level scalar metrics as `k=v`, the primary metric first (`f1=0.81  dense_f1=0.85`),
    nested ones as `section.k=v`, at most `limit`."""
    parts: list[str] = []
    for key, value in _primary_first(metrics or {}).items():
        if isinstance(value, dict):
            parts += [f"{key}.{k}={scalar(v)}" for k, v in value.items()
                      if isinstance(v, int | float | str)]  # fmt: skip
        elif isinstance(value, int | float | str):
            parts.append(f"{key}={scalar(value)}")
    return "  ".join(parts[:limit])


def spec_summary(spec: dict[str, Any]) -> tuple[str, str, str]:
    dataset = spec.get("dataset")
    name = dataset.get("name", "") if isinstance(dataset, dict) else str(dataset or "")
    raw = spec.get("pruning")
    pruning: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if pruning.get("method") == "structured":  # a speedup target; sparsity does not apply
        options = pruning.get("structured")
        target = options.get("target_speedup", 2.0) if isinstance(options, dict) else 2.0
        return str(spec.get("model", "")), str(name), f"structured {target}x"
    method = f"{pruning.get('method', '')} {pruning.get('sparsity', '')}".strip()
    return str(spec.get("model", "")), str(name), method


def jobs_table(jobs: list[JSON]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("ID", no_wrap=True, min_width=36)
    for col in ("STATUS", "STAGE", "PROGRESS", "MODEL", "DATASET", "PRUNING"):
        table.add_column(col, overflow="fold")
    table.add_column("CREATED", no_wrap=True, min_width=16)
    for job in jobs:
        status = str(job.get("status"))
        model, dataset, pruning = spec_summary(job.get("spec") or {})
        table.add_row(
            str(job.get("id")), f"[{STATUS_STYLE.get(status, '')}]{status}[/]",
            str(job.get("stage") or "-"), f"{100 * float(job.get('progress') or 0):.0f}%",
            model, dataset, pruning, str(job.get("created_at", ""))[:16].replace("T", " "),
        )  # fmt: skip
    return table


def job_summary(job: JSON) -> str:
    line = f"job {job.get('id')}: {job.get('status')}"
    if job.get("stage"):
        line += f" (stage {job['stage']}, {100 * float(job.get('progress') or 0):.0f}%)"
    error = job.get("error")
    if isinstance(error, dict):
        line += f"\n  error {error.get('code')}: {error.get('message')}"
    metrics = metrics_line(job.get("metrics"), limit=12)
    if metrics:
        line += f"\n  metrics: {metrics}"
    return line


class JobProgress:
    """A live bar for one job: status and stage, percent, elapsed time and the metrics."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(), TextColumn("{task.fields[metrics]}"), console=console,
        )  # fmt: skip
        self.task: TaskID = self.progress.add_task("waiting", total=1.0, metrics="")

    def update(self, job: JSON) -> None:
        status, stage = job.get("status"), job.get("stage")
        description = f"{status} · {stage}" if stage else str(status)
        self.progress.update(
            self.task, completed=min(max(float(job.get("progress") or 0), 0.0), 1.0),
            description=description, metrics=metrics_line(job.get("metrics"), limit=3),
        )  # fmt: skip

    def __enter__(self) -> JobProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


class DownloadBar:
    """Bytes of one artifact as they arrive; gone once done."""

    def __init__(self, console: Console, art: JSON) -> None:
        self.progress = Progress(
            TextColumn(str(art.get("filename"))), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), console=console, transient=True,
        )  # fmt: skip
        self.task = self.progress.add_task("", total=art.get("size_bytes"))

    def on_progress(self, done: int, total: int | None) -> None:
        self.progress.update(self.task, completed=done, total=total)

    def __enter__(self) -> DownloadBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
