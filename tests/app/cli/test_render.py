"""Human output: the job summaries and table of `scalpel jobs`, event lines, the time left."""

from __future__ import annotations

import io

from rich.console import Console

from app.cli.render import (
    JobProgress,
    duration,
    event_line,
    job_summary,
    jobs_table,
    spec_summary,
    telemetry_line,
)


def test_a_sparsity_method_shows_its_target_sparsity() -> None:
    spec = {"model": "minilm-l6", "dataset": {"name": "sst2"},
            "pruning": {"method": "obert", "sparsity": 0.8}}  # fmt: skip
    assert spec_summary(spec) == ("minilm-l6", "sst2", "obert 0.8")


def test_a_structured_job_shows_its_speedup_target_not_a_sparsity() -> None:
    spec = {"model": "minilm-l6", "dataset": {"name": "sst2"},
            "pruning": {"method": "structured", "sparsity": 0.5,
                        "structured": {"target_speedup": 3.0}}}  # fmt: skip
    assert spec_summary(spec) == ("minilm-l6", "sst2", "structured 3.0x")
    spec["pruning"] = {"method": "structured", "structured": None}
    assert spec_summary(spec)[2] == "structured 2.0x"


def test_durations_read_at_a_glance() -> None:
    assert [duration(s) for s in (0, 45.4, 200, 7500, 97200)] == [
        "0s", "45s", "3m20s", "2h05m", "1d03h",
    ]  # fmt: skip


TELEMETRY = {"step": 120, "total_steps": 300, "loss": 0.41234, "loss_steps": 50,
             "learning_rate": 3.2e-05, "steps_per_s": 5.06, "examples_per_s": 80.96,
             "stage_steps_per_s": 5.0, "elapsed_s": 83.2, "remaining_steps": 180}  # fmt: skip


def test_a_telemetry_event_reads_as_a_line() -> None:
    event = {"id": 7, "kind": "telemetry", "stage": "recover", "progress": 0.4, "status": None,
             "message": None, "data": TELEMETRY, "created_at": "2026-01-02T10:00:03Z"}  # fmt: skip
    assert event_line(event) == (
        "#7  2026-01-02 10:00:03  telemetry  recover  40%  step 120/300  loss 0.4123  "
        "lr 3.2e-05  5.06 steps/s  81 examples/s  elapsed 1m23s  180 steps left"
    )
    sparse = {**TELEMETRY, "loss": None, "steps_per_s": None, "examples_per_s": None}
    assert telemetry_line(sparse) == "step 120/300  lr 3.2e-05  elapsed 1m23s  180 steps left"


def test_jobs_show_names_short_ids_and_the_time_left() -> None:
    model_id = "0b6f3c52-1d1e-4a3c-9d55-2a4f8f1e9c11"
    data_id = "5d2c0c7e-8a43-4f0e-a3b1-6c1f0d2e7a90"  # an upload not found: its short id
    named = {"id": "7f3e2a10-0000-4000-8000-000000000001", "name": "sst2-80", "status": "running",
             "stage": "recover", "progress": 0.4, "eta_seconds": 200.0,
             "spec": {"model": model_id, "dataset": {"name": data_id}},
             "created_at": "2026-01-02T10:00:00Z"}  # fmt: skip
    unnamed = {
        **named,
        "id": "9a8b7c6d-0000-4000-8000-000000000002",
        "name": None,
        "eta_seconds": None,
        "spec": {"model": "minilm-l6", "dataset": {"name": "sst2"}},
    }
    console = Console(width=200, file=io.StringIO(), highlight=False)
    console.print(jobs_table([named, unnamed], {model_id: "my-bert"}))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    lines = out.splitlines()
    assert lines[0].split() == ["JOB", "STATUS", "STAGE", "PROGRESS", "ETA", "MODEL", "DATASET",
                                "PRUNING", "CREATED"]  # fmt: skip
    assert lines[1].split()[:7] == ["sst2-80", "running", "recover", "40%", "3m20s", "my-bert",
                                    data_id[:8]]  # fmt: skip
    assert lines[2].split()[:7] == ["9a8b7c6d", "running", "recover", "40%", "-", "minilm-l6",
                                    "sst2"]  # fmt: skip
    assert named["id"] not in out


def test_show_and_watch_tell_the_time_left() -> None:
    job = {"id": "j1", "status": "running", "stage": "recover", "progress": 0.5,
           "eta_seconds": 95.0, "eta_at": "2026-01-02T10:01:35Z", "metrics": {}}  # fmt: skip
    assert "\n  eta 1m35s (the training left, until 2026-01-02T10:01:35 UTC)" in job_summary(job)
    assert "eta" not in job_summary({**job, "eta_seconds": None, "eta_at": None})
    buf = io.StringIO()
    with JobProgress(Console(file=buf, width=120, highlight=False)) as bar:
        bar.update(job)
    assert "running · recover" in buf.getvalue() and "eta 1m35s" in buf.getvalue()
