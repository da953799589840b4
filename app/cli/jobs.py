"""scalpel submit | watch | show | jobs | cancel | delete | events."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Annotated, cast, get_args

import typer

from app.cli.context import Exit, api, emit_json, fail, state
from app.cli.names import upload_names
from app.cli.options import (
    PruningMethod,
    Quantization,
    QuietOption,
    StatusChoice,
    Structure,
    TaskOption,
)
from app.cli.render import JobProgress, dry_run_summary, event_line, job_summary, jobs_table
from app.cli.spec import SpecError, build_spec, parse_labels
from scalpel_client import Job, JobEvent, JobStatus, ScalpelClient

JobId = Annotated[str, typer.Argument(metavar="JOB_ID", help="The job's id.")]
LabelOption = typer.Option(
    "--label", metavar="KEY=VALUE", help="A label, e.g. team=search (repeatable)."
)


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command()(watch)
    app.command()(show)
    app.command("jobs")(list_jobs)
    app.command()(cancel)
    app.command()(delete)
    app.command()(events)


def submit(
    ctx: typer.Context,
    spec_file: Annotated[
        Path | None, typer.Option("--spec", help="A job spec, YAML or JSON.")
    ] = None,
    recipe: Annotated[
        str | None,
        typer.Option(
            metavar="NAME", help="A built-in recipe (see `scalpel recipes`), NAME or NAME@VERSION."
        ),
    ] = None,
    task: TaskOption = None,
    model: Annotated[str | None, typer.Option(help="Built-in model or uploaded model id.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Built-in data set or uploaded id.")] = None,
    sparsity: Annotated[float | None, typer.Option(help="Target sparsity, 0 to 0.99.")] = None,
    method: Annotated[PruningMethod | None, typer.Option(help="The pruning method.")] = None,
    structure: Annotated[Structure | None, typer.Option(help="The sparsity pattern.")] = None,
    quantization: Annotated[Quantization | None, typer.Option(help="How to quantize.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Any spec field, e.g. training.max_steps=100 (repeatable).",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="The job's name.")] = None,
    label: Annotated[list[str] | None, LabelOption] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Reuse to make a retried submit return the same job.")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check the submission and show the spec as it would be stored, with its "
            "memory and time estimates; submit nothing.",
        ),
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Then watch the job.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Submit a compression job: flags override the --spec file, which a --recipe is under.
    With --quiet, stdout is the job's id alone (with --wait, the progress still goes to
    stderr and the exit code tells how the job ended)."""
    st = state(ctx)
    flags = {"recipe": recipe, "task": task, "model": model, "dataset.name": dataset,
             "pruning.sparsity": sparsity, "pruning.method": method,
             "pruning.structure": structure, "quantization.method": quantization,
             "name": name}  # fmt: skip
    if dry_run and (wait or quiet):
        fail(st, Exit.USAGE, f"--dry-run submits no job: no {'--wait' if wait else '--quiet'}")
    try:
        spec = build_spec(spec_file, flags, set_ or [], parse_labels(label or []))
    except SpecError as exc:
        fail(st, Exit.USAGE, str(exc))
    if dry_run:
        with api(ctx) as client:
            result = client.submit_job(spec, dry_run=True)
        if st.json:
            emit_json(result)
        else:
            typer.echo(dry_run_summary(result))
        return
    with api(ctx) as client:
        job = client.submit_job(spec, idempotency_key=idempotency_key)
        if quiet:
            typer.echo(job["id"])
        if wait:
            _watch(ctx, client, job["id"], 2.0, None, quiet=quiet)
            return
    if quiet:
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
    """Follow a job to its end with a progress bar and the time its training has left (eta);
    exits 3 if it failed, 4 if canceled. With --json, one JSON line per change."""
    with api(ctx) as client:
        _watch(ctx, client, job_id, interval, timeout)


def _watch(
    ctx: typer.Context, client: ScalpelClient, job_id: str, interval: float,
    timeout: float | None, *, quiet: bool = False,
) -> None:  # fmt: skip
    st = state(ctx)
    if quiet:
        with JobProgress(st.err) as bar:
            job = client.wait(job_id, on_update=bar.update, poll_interval=interval,
                              timeout=timeout)  # fmt: skip
    elif st.json:
        job = client.wait(job_id, on_update=lambda j: typer.echo(json.dumps(j, default=str)),
                          poll_interval=interval, timeout=timeout)  # fmt: skip
    else:
        with JobProgress(st.err) as bar:
            job = client.wait(job_id, on_update=bar.update, poll_interval=interval,
                              timeout=timeout)  # fmt: skip
        typer.echo(job_summary(job))
    _exit_for(job)


def _exit_for(job: Job) -> None:
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


When = Annotated[
    str | None, typer.Option(metavar="TIME", help="RFC 3339, e.g. 2026-01-31T12:00:00Z.")
]


def list_jobs(
    ctx: typer.Context,
    status: Annotated[
        list[StatusChoice] | None,
        typer.Option(
            metavar=f"<{'|'.join(get_args(JobStatus))}>",
            help="Only jobs in this status (repeatable: any of them).",
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only jobs on this model (name or id).")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Only jobs on this data set (name or id).")
    ] = None,
    recipe: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only jobs from NAME or NAME@VERSION.")
    ] = None,
    label: Annotated[list[str] | None, LabelOption] = None,
    created_after: When = None,
    created_before: When = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many (newest first).")] = 50,
    ids: Annotated[bool, typer.Option("--ids", help="Show each job's full id too.")] = False,
) -> None:
    """List jobs, newest first: each by its name (else the start of its id), its model and
    data set by name, and the time its training has left. Every filter given must match
    (--label: each of them; --created-after inclusive, --created-before exclusive). --json:
    the jobs as the API sends them."""
    st = state(ctx)
    try:
        labels = parse_labels(label or [])
    except SpecError as exc:
        fail(st, Exit.USAGE, str(exc))
    statuses = cast(list[JobStatus], [str(s) for s in status or ()])
    with api(ctx) as client:
        listing = client.list_jobs(
            status=statuses, page_size=min(limit, 200), model=model, dataset=dataset,
            recipe=recipe, labels=labels, created_after=created_after,
            created_before=created_before,
        )  # fmt: skip
        jobs = list(itertools.islice(listing, limit))
        names = upload_names(client, jobs) if jobs and not st.json else {}
    if st.json:
        emit_json(jobs)
    elif not jobs:
        typer.echo("no jobs")
    else:
        st.out.print(jobs_table(jobs, names, ids=ids))


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


def delete(ctx: typer.Context, job_id: JobId) -> None:
    """Delete a finished job with its events and artifacts (cancel a queued or running one
    first)."""
    with api(ctx) as client:
        client.delete_job(job_id)
    if state(ctx).json:
        emit_json({"id": job_id, "kind": "job", "deleted": True})
    else:
        typer.echo(f"deleted job {job_id}")


def events(
    ctx: typer.Context,
    job_id: JobId,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream new events until the job ends.")
    ] = False,
    after: Annotated[
        int | None, typer.Option(min=0, help="Only the events after this event id.")
    ] = None,
) -> None:
    """A job's events, oldest first; live with --follow.

    Without --follow, the events so far; with it, each new one as it happens (Server-Sent
    Events) until the job ends, then the exit code is watch's (3 failed, 4 canceled). A
    training stage's telemetry reads `step 120/300  loss 0.41  lr 3e-05  5.1 steps/s ...`.
    With --json, one JSON object per event and line."""
    st = state(ctx)
    shown = 0

    def show(event: JobEvent) -> None:
        nonlocal shown
        shown += 1
        typer.echo(json.dumps(event, default=str) if st.json else event_line(event))

    with api(ctx) as client:
        if not follow:
            for event in client.iter_events(job_id, after=after):
                show(event)
            if not shown and not st.json:
                typer.echo("no events")
            return
        with client.stream_events(job_id, after=after) as stream:
            for event in stream:
                show(event)
    if stream.job is not None:
        _exit_for(stream.job)
