"""scalpel submit | watch | show | jobs | cancel."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Annotated

import typer

from app.cli.context import Exit, TaskOption, api, emit_json, fail, state
from app.cli.render import JobProgress, job_summary, jobs_table
from app.cli.spec import SpecError, build_spec
from app.client import JSON, ScalpelClient

JobId = Annotated[str, typer.Argument(help="The job's id.")]


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command()(watch)
    app.command()(show)
    app.command("jobs")(list_jobs)
    app.command()(cancel)


def submit(
    ctx: typer.Context,
    spec_file: Annotated[
        Path | None, typer.Option("--spec", help="A job spec, YAML or JSON.")
    ] = None,
    task: TaskOption = None,
    model: Annotated[str | None, typer.Option(help="Built-in model or uploaded model id.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Built-in data set or uploaded id.")] = None,
    sparsity: Annotated[float | None, typer.Option(help="Target sparsity, 0 to 0.99.")] = None,
    method: Annotated[str | None, typer.Option(help="magnitude, obert, structured, none.")] = None,
    structure: Annotated[str | None, typer.Option(help="unstructured or block4.")] = None,
    quantization: Annotated[str | None, typer.Option(help="none or dynamic_int8.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Any spec field, e.g. training.max_steps=100 (repeatable).",
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Reuse to make a retried submit return the same job.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Then watch the job.")] = False,
) -> None:
    """Submit a compression job: flags override the --spec file."""
    st = state(ctx)
    flags = {"task": task, "model": model, "dataset.name": dataset, "pruning.sparsity": sparsity,
             "pruning.method": method, "pruning.structure": structure,
             "quantization.method": quantization}  # fmt: skip
    try:
        spec = build_spec(spec_file, flags, set_ or [])
    except SpecError as exc:
        fail(st, Exit.USAGE, str(exc))
    with api(ctx) as client:
        job = client.submit_job(spec, idempotency_key=idempotency_key)
        if wait:
            _watch(ctx, client, str(job["id"]), 2.0, None)
            return
    if st.json:
        emit_json(job)
    else:
        typer.echo(f"submitted job {job['id']} ({job['status']})")


def watch(
    ctx: typer.Context,
    job_id: JobId,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between polls.")] = 2.0,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
) -> None:
    """Follow a job to its end with a progress bar; exits 3 if it failed, 4 if canceled.
    With --json, one JSON line per change."""
    with api(ctx) as client:
        _watch(ctx, client, job_id, interval, timeout)


def _watch(
    ctx: typer.Context, client: ScalpelClient, job_id: str, interval: float,
    timeout: float | None,
) -> None:  # fmt: skip
    st = state(ctx)
    if st.json:
        job = client.wait(job_id, on_update=lambda j: typer.echo(json.dumps(j, default=str)),
                          poll_interval=interval, timeout=timeout)  # fmt: skip
    else:
        with JobProgress(st.err) as bar:
            job = client.wait(job_id, on_update=bar.update, poll_interval=interval,
                              timeout=timeout)  # fmt: skip
        typer.echo(job_summary(job))
    _exit_for(job)


def _exit_for(job: JSON) -> None:
    if job.get("status") == "failed":
        raise typer.Exit(int(Exit.JOB_FAILED))
    if job.get("status") == "canceled":
        raise typer.Exit(int(Exit.JOB_CANCELED))


def show(ctx: typer.Context, job_id: JobId) -> None:
    """One job: status, stage, error and metrics."""
    with api(ctx) as client:
        job = client.get_job(job_id)
    if state(ctx).json:
        emit_json(job)
    else:
        typer.echo(job_summary(job))


def list_jobs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, ...")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many (newest first).")] = 50,
) -> None:
    """List jobs, newest first."""
    with api(ctx) as client:
        jobs = list(itertools.islice(client.list_jobs(status=status, page_size=min(limit, 200)),
                                     limit))  # fmt: skip
    st = state(ctx)
    if st.json:
        emit_json(jobs)
    elif not jobs:
        typer.echo("no jobs")
    else:
        st.out.print(jobs_table(jobs))


def cancel(ctx: typer.Context, job_id: JobId) -> None:
    """Cancel a job: a queued one at once, a running one at its next step."""
    with api(ctx) as client:
        job = client.cancel_job(job_id)
    if state(ctx).json:
        emit_json(job)
    elif job["status"] == "canceled":
        typer.echo(f"job {job_id}: canceled")
    else:
        typer.echo(f"job {job_id}: cancel requested ({job['status']})")
