"""scalpel download | models upload/list/delete | datasets upload/list/delete."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli.context import Exit, api, emit_json, fail, state
from app.cli.options import QuietOption, TaskOption
from app.cli.render import DownloadBar
from scalpel_client import Artifact, ScalpelClient
from scalpel_client.base import find_artifact

models = typer.Typer(help="Uploaded models.", no_args_is_help=True, rich_markup_mode=None)
datasets = typer.Typer(help="Uploaded data sets.", no_args_is_help=True, rich_markup_mode=None)
Key = Annotated[str | None, typer.Option(help="Reuse to make a retried upload idempotent.")]


def register(app: typer.Typer) -> None:
    app.command()(download)
    app.add_typer(models, name="models")
    app.add_typer(datasets, name="datasets")


def download(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="The job's id.")],
    artifact: Annotated[
        list[str] | None,
        typer.Option(
            help="Kind, file name or id (repeatable); default: every artifact not expired."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="The folder to write into.")] = Path("."),
) -> None:
    """Download a job's artifacts (resumes partial files; verifies each sha-256). Expired
    ones (their files removed after the retention) are skipped with a note on stderr; one
    named with --artifact is an error."""
    st = state(ctx)
    out.mkdir(parents=True, exist_ok=True)
    done: list[dict[str, Any]] = []
    with api(ctx) as client:
        listing = client.list_artifacts(job_id)
        chosen = [find_artifact(listing, n) for n in artifact] if artifact else listing
        expired = [a for a in chosen if a.get("expired_at")]
        if artifact and expired:
            fail(st, Exit.ERROR, "; ".join(map(_expired, expired)) + ": nothing downloaded")
        for art in expired:
            typer.echo(f"note: skipped {_expired(art)}", err=True)
        for art in chosen:
            if art in expired:
                continue
            done.append(_fetch(ctx, client, art, out))
    if st.json:
        emit_json(done)
    elif done:
        for item in done:
            typer.echo(f"{item['path']}  sha256:{item['sha256']}")
    else:
        typer.echo("nothing to download: every artifact has expired" if expired
                   else "the job has no artifacts")  # fmt: skip


def _expired(art: Artifact) -> str:
    return (f"artifact {art['kind']} ({art['filename']}) expired at {art['expired_at']}: "
            "its file was removed after the retention")  # fmt: skip


def _fetch(ctx: typer.Context, client: ScalpelClient, art: Artifact, out: Path) -> dict[str, Any]:
    st = state(ctx)
    if st.json:
        path = client.download(art, out)
    else:
        with DownloadBar(st.err, art) as bar:
            path = client.download(art, out, on_progress=bar.on_progress)
    return {"kind": art["kind"], "path": str(path), "sha256": art["sha256"],
            "size_bytes": art["size_bytes"]}  # fmt: skip


def _show_upload(ctx: typer.Context, item: Mapping[str, Any], what: str, *, quiet: bool) -> None:
    if quiet:
        typer.echo(item["id"])
    elif state(ctx).json:
        emit_json(item)
    else:
        typer.echo(f"uploaded {what} {item['id']} ({item['name']}, {item['size_bytes']} bytes)")


@models.command("upload")
def upload_model(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(metavar="PATH", help="An HF model folder as .zip or .tar.gz.")
    ],
    name: Annotated[str | None, typer.Option(help="Default: the file name.")] = None,
    idempotency_key: Key = None,
    quiet: QuietOption = False,
) -> None:
    """Upload a model archive; prints its id (use it as --model; --quiet: the id alone)."""
    with api(ctx) as client:
        item = client.upload_model(path, name=name, idempotency_key=idempotency_key)
    _show_upload(ctx, item, "model", quiet=quiet)


@datasets.command("upload")
def upload_dataset(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            metavar="PATH",
            help="UTF-8: a .csv, .tsv or .jsonl table; CoNLL or tagged JSONL "
            "(token_classification); SQuAD .json or .jsonl (question_answering).",
        ),
    ],
    name: Annotated[str | None, typer.Option(help="Default: the file name.")] = None,
    task: TaskOption = None,
    text_columns: Annotated[str | None, typer.Option(help="One or two, comma separated.")] = None,
    label_column: Annotated[
        str | None, typer.Option(help="The label column (regression: the score column).")
    ] = None,
    tag_column: Annotated[
        str | None,
        typer.Option(help="token_classification: the JSONL tags field or CoNLL column number."),
    ] = None,
    tag_scheme: Annotated[
        str | None, typer.Option(help="token_classification: IOB1, IOB2 or auto.")
    ] = None,
    format: Annotated[str | None, typer.Option(help="csv, tsv, jsonl, conll or squad.")] = None,
    idempotency_key: Key = None,
    quiet: QuietOption = False,
) -> None:
    """Upload a data set; prints its id (use it as --dataset; --quiet: the id alone)."""
    with api(ctx) as client:
        item = client.upload_dataset(
            path, name=name, text_columns=text_columns, label_column=label_column,
            format=format, idempotency_key=idempotency_key, task=task, tag_column=tag_column,
            tag_scheme=tag_scheme,
        )  # fmt: skip
    _show_upload(ctx, item, "data set", quiet=quiet)


@models.command("delete")
def delete_model(
    ctx: typer.Context, model_id: Annotated[str, typer.Argument(metavar="ID")]
) -> None:
    """Delete an uploaded model (not while a queued or running job uses it)."""
    with api(ctx) as client:
        client.delete_model(model_id)
    _show_deleted(ctx, "model", model_id)


@datasets.command("delete")
def delete_dataset(
    ctx: typer.Context, dataset_id: Annotated[str, typer.Argument(metavar="ID")]
) -> None:
    """Delete an uploaded data set (not while a queued or running job uses it)."""
    with api(ctx) as client:
        client.delete_dataset(dataset_id)
    _show_deleted(ctx, "data set", dataset_id)


def _show_deleted(ctx: typer.Context, what: str, item_id: str) -> None:
    if state(ctx).json:
        emit_json({"id": item_id, "kind": what.replace(" ", ""), "deleted": True})
    else:
        typer.echo(f"deleted {what} {item_id}")


@models.command("list")
def list_models(ctx: typer.Context) -> None:
    """Uploaded models."""
    with api(ctx) as client:
        items = list(client.list_models())
    _show_list(ctx, items, ("id", "name", "architecture", "num_parameters", "created_at"))


@datasets.command("list")
def list_datasets(ctx: typer.Context) -> None:
    """Uploaded data sets."""
    with api(ctx) as client:
        items = list(client.list_datasets())
    _show_list(ctx, items, ("id", "name", "format", "num_rows", "created_at"))


def _show_list(
    ctx: typer.Context, items: Sequence[Mapping[str, Any]], columns: tuple[str, ...]
) -> None:
    st = state(ctx)
    if st.json:
        emit_json(items)
        return
    table = Table(box=None, pad_edge=False)
    for c in columns:
        table.add_column(
            c.upper(),
            no_wrap=c in ("id", "created_at"),
            min_width={"id": 36, "created_at": 19}.get(c),
            overflow="fold",
        )
    for item in items:
        table.add_row(*[str(item.get(c, ""))[: 19 if c == "created_at" else None] for c in columns])
    st.out.print(table)
