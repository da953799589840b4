"""scalpel download | models upload/list | datasets upload/list."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli.context import TaskOption, api, emit_json, state
from app.cli.render import DownloadBar
from app.client import JSON
from app.client.base import find_artifact

models = typer.Typer(help="Uploaded models.", no_args_is_help=True)
datasets = typer.Typer(help="Uploaded data sets.", no_args_is_help=True)
Key = Annotated[str | None, typer.Option(help="Reuse to make a retried upload idempotent.")]


def register(app: typer.Typer) -> None:
    app.command()(download)
    app.add_typer(models, name="models")
    app.add_typer(datasets, name="datasets")


def download(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    artifact: Annotated[
        list[str] | None,
        typer.Option(help="Kind, file name or id (repeatable); default: every artifact."),
    ] = None,
    out: Annotated[Path, typer.Option(help="The folder to write into.")] = Path("."),
) -> None:
    """Download a job's artifacts (resumes partial files; verifies each sha-256)."""
    st = state(ctx)
    out.mkdir(parents=True, exist_ok=True)
    done: list[dict[str, Any]] = []
    with api(ctx) as client:
        listing = client.list_artifacts(job_id)
        chosen = [find_artifact(listing, n) for n in artifact] if artifact else listing
        for art in chosen:
            if st.json:
                path = client.download(art, out)
            else:
                with DownloadBar(st.err, art) as bar:
                    path = client.download(art, out, on_progress=bar.on_progress)
            done.append({"kind": art["kind"], "path": str(path), "sha256": art["sha256"],
                         "size_bytes": art["size_bytes"]})  # fmt: skip
    if st.json:
        emit_json(done)
    elif not done:
        typer.echo("the job has no artifacts")
    else:
        for item in done:
            typer.echo(f"{item['path']}  sha256:{item['sha256']}")


def _show_upload(ctx: typer.Context, item: JSON, what: str) -> None:
    if state(ctx).json:
        emit_json(item)
    else:
        typer.echo(f"uploaded {what} {item['id']} ({item['name']}, {item['size_bytes']} bytes)")


@models.command("upload")
def upload_model(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="An HF model folder as .zip or .tar.gz.")],
    name: Annotated[str | None, typer.Option(help="Default: the file name.")] = None,
    idempotency_key: Key = None,
) -> None:
    """Upload a model archive; prints its id (use it as --model)."""
    with api(ctx) as client:
        item = client.upload_model(path, name=name, idempotency_key=idempotency_key)
    _show_upload(ctx, item, "model")


@datasets.command("upload")
def upload_dataset(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            help="UTF-8: a .csv, .tsv or .jsonl table; CoNLL or tagged JSONL "
            "(token_classification); SQuAD .json or .jsonl (question_answering)."
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
) -> None:
    """Upload a data set; prints its id (use it as --dataset)."""
    with api(ctx) as client:
        item = client.upload_dataset(
            path, name=name, text_columns=text_columns, label_column=label_column,
            format=format, idempotency_key=idempotency_key, task=task, tag_column=tag_column,
            tag_scheme=tag_scheme,
        )  # fmt: skip
    _show_upload(ctx, item, "data set")


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


def _show_list(ctx: typer.Context, items: list[JSON], columns: tuple[str, ...]) -> None:
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
