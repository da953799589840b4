"""scalpel recipes [NAME]: the built-in recipes a job can start from (`submit --recipe`)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from app.cli.context import api, emit_json, state


def register(app: typer.Typer) -> None:
    app.command()(recipes)


def recipes(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(metavar="NAME", help="Show one recipe's spec: NAME or NAME@VERSION."),
    ] = None,
) -> None:
    """List the built-in recipes (each at its latest version), or show one."""
    st = state(ctx)
    with api(ctx) as client:
        if name is not None:
            recipe = client.get_recipe(name)
            if st.json:
                emit_json(recipe)
            else:
                typer.echo(f"{recipe['ref']}: {recipe['description']}")
                typer.echo(json.dumps(recipe["spec"], indent=2))
            return
        items = client.list_recipes()
    if st.json:
        emit_json(items)
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("NAME", no_wrap=True)
    table.add_column("VERSION", no_wrap=True)
    table.add_column("DESCRIPTION", overflow="fold")
    for r in items:
        table.add_row(r["name"], str(r["version"]), r["description"])
    st.out.print(table)
