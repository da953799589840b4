"""Human output: job tables, one-line summaries and the live progress of `watch`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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

from app.cli.names import job_label, short_id

JSON = Mapping[str, Any]  # a job, artifact or event as the API sent it
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


def duration(seconds: float) -> str:
    """`45s`, `3m20s`, `2h05m`, `1d04h`."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def eta_text(job: JSON) -> str:
    """`eta 3m20s` from the job's eta_seconds (the training left); "" when not known."""
    left = job.get("eta_seconds")
    return f"eta {duration(float(left))}" if isinstance(left, int | float) else ""


def jobs_table(
    jobs: Sequence[JSON], names: Mapping[str, str] | None = None, *, ids: bool = False
) -> Table:
    """A row a job: its name (else its short id; `ids`: the full id too), its model and data
    set by name (`names`: upload id -> name, else a short id) and its time left."""
    names = names or {}
    table = Table(box=None, pad_edge=False)
    table.add_column("JOB", overflow="fold")
    if ids:
        table.add_column("ID", no_wrap=True, min_width=36)
    for col in ("STATUS", "STAGE", "PROGRESS", "ETA", "MODEL", "DATASET", "PRUNING"):
        table.add_column(col, overflow="fold")
    table.add_column("CREATED", no_wrap=True, min_width=16)
    for job in jobs:
        status = str(job.get("status"))
        model, dataset, pruning = spec_summary(job.get("spec") or {})
        left = job.get("eta_seconds")
        row = [job_label(job), *([str(job.get("id"))] if ids else []),
               f"[{STATUS_STYLE.get(status, '')}]{status}[/]", str(job.get("stage") or "-"),
               f"{100 * float(job.get('progress') or 0):.0f}%",
               duration(float(left)) if isinstance(left, int | float) else "-",
               names.get(model, short_id(model)), names.get(dataset, short_id(dataset)),
               pruning, str(job.get("created_at", ""))[:16].replace("T", " ")]  # fmt: skip
        table.add_row(*row)
    return table


def _num(value: Any, fmt: str) -> str | None:
    """A number as `fmt` says (`d`: a whole one), None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return format(round(value) if fmt == "d" else value, fmt)


def telemetry_line(data: Mapping[str, Any]) -> str:
    """`step 120/300  loss 0.4123  lr 3.2e-05  5.1 steps/s  81.3 examples/s  elapsed 1m23s
    180 steps left` (what is missing is left out)."""
    parts = []
    if (step := _num(data.get("step"), "d")) is not None:
        total = _num(data.get("total_steps"), "d")
        parts.append(f"step {step}/{total}" if total is not None else f"step {step}")
    for key, label, fmt in (("loss", "loss", ".4f"), ("learning_rate", "lr", ".3g")):
        if (text := _num(data.get(key), fmt)) is not None:
            parts.append(f"{label} {text}")
    for key, unit in (("steps_per_s", "steps/s"), ("examples_per_s", "examples/s")):
        if (text := _num(data.get(key), ".3g")) is not None:
            parts.append(f"{text} {unit}")
    if (elapsed := _num(data.get("elapsed_s"), "f")) is not None:
        parts.append(f"elapsed {duration(float(elapsed))}")
    if (left := _num(data.get("remaining_steps"), "d")) is not None:
        parts.append(f"{left} steps left")
    return "  ".join(parts)


def event_line(event: Mapping[str, Any]) -> str:
    """`#4  2025-01-02 10:00:03  stage  prune 10%`: id, time, kind, then what the event says."""
    when = str(event.get("created_at", ""))[:19].replace("T", " ")
    parts = [f"#{event.get('id')}", when, str(event.get("kind"))]
    for key in ("status", "stage"):
        if event.get(key):
            parts.append(str(event[key]))
    if event.get("progress") is not None:
        parts.append(f"{100 * float(event['progress']):.0f}%")
    if event.get("message"):
        parts.append(str(event["message"]))
    data = event.get("data")
    if event.get("kind") == "telemetry" and isinstance(data, dict):
        parts.append(telemetry_line(data) or json.dumps(data, default=str))
    elif isinstance(data, dict) and data:
        parts.append(metrics_line(data) or json.dumps(data, default=str))
    return "  ".join(parts)


def job_summary(job: JSON) -> str:
    line = f"job {job.get('id')}: {job.get('status')}"
    if job.get("stage"):
        line += f" (stage {job['stage']}, {100 * float(job.get('progress') or 0):.0f}%)"
    if eta := eta_text(job):
        line += f"\n  {eta} (the training left, until {str(job.get('eta_at'))[:19]} UTC)"
    error = job.get("error")
    if isinstance(error, dict):
        line += f"\n  error {error.get('code')}: {error.get('message')}"
    metrics = metrics_line(job.get("metrics"), limit=12)
    if metrics:
        line += f"\n  metrics: {metrics}"
    return line


def size(n: float) -> str:
    """`512 MiB`, `1.2 GiB` (binary units, as memory budgets are)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def _joined(*parts: str | None) -> str:
    return "  ".join(p for p in parts if p)


def dry_run_summary(result: JSON) -> str:
    """What `submit --dry-run` shows: that nothing was submitted, the job's model, data set,
    pruning, recipe, name and labels, the estimates against their limits (and the setting
    each limit comes from), then the spec as it would be stored."""
    spec = result.get("spec") or {}
    model, dataset, pruning = spec_summary(spec)
    recipe = spec.get("recipe")
    lines = [
        "dry run: the submission passed its checks; nothing was submitted",
        "  " + _joined(f"model {model}", f"data set {dataset}", f"pruning {pruning}",
                       f"recipe {recipe}" if recipe else None),
    ]  # fmt: skip
    name, labels = result.get("name"), result.get("labels") or {}
    if name or labels:
        tags = " ".join(f"{k}={v}" for k, v in labels.items())
        lines.append("  " + _joined(name and f"name {name}", tags and f"labels {tags}"))
    memory, time = result.get("memory_estimate"), result.get("time_estimate")
    if isinstance(memory, dict):
        lines.append(f"  memory: peak {size(memory['peak_bytes'])} ({memory['phase']}), budget "
                     f"{size(memory['budget_bytes'])} ({memory['budget_setting']})")  # fmt: skip
    else:
        lines.append("  no estimates: the model's config is not known")
    if isinstance(time, dict):
        lines.append(f"  time: about {duration(time['seconds'])}, limit "
                     f"{duration(time['limit_s'])} ({time['limit_setting']})")  # fmt: skip
    lines.append("  spec: " + json.dumps(spec, indent=2).replace("\n", "\n  "))
    return "\n".join(lines)


class JobProgress:
    """A live bar for one job: status and stage, percent, elapsed time, the time its training
    has left (the job's eta_seconds) and the metrics."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(), TextColumn("{task.fields[eta]}"),
            TextColumn("{task.fields[metrics]}"), console=console,
        )  # fmt: skip
        self.task: TaskID = self.progress.add_task("waiting", total=1.0, metrics="", eta="")

    def update(self, job: JSON) -> None:
        status, stage = job.get("status"), job.get("stage")
        description = f"{status} · {stage}" if stage else str(status)
        self.progress.update(
            self.task, completed=min(max(float(job.get("progress") or 0), 0.0), 1.0),
            description=description, metrics=metrics_line(job.get("metrics"), limit=3),
            eta=eta_text(job),
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
