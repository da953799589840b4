"""The `scalpel` command: global options, then the commands of app.cli.jobs, app.cli.files and
app.cli.recipes, over the scalpel_client package.

Exit codes: 0 ok, 1 API or client error, 2 bad usage, 3 job failed, 4 job canceled,
5 API unreachable (one line on stderr: the base URL, why, and the request), 6 digest mismatch,
7 timeout, 130 interrupted. For scripts: `submit`, `models upload` and `datasets upload` take
--quiet/-q and then print the new id alone; --json makes every command's output JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli import files, jobs, recipes
from app.cli.context import State

# Plain click help (rich_markup_mode=None): flags show as flags, an option's choices as
# <a|b|c>; typer's rich panels print `<bool>` after every flag.
app = typer.Typer(
    name="scalpel", help="Scalpel: compression as a service, from the command line.",
    no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
    context_settings={"max_content_width": 100},
)  # fmt: skip


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            help="API base URL. Default: $SCALPEL_URL, the config file, http://127.0.0.1:8000."
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="API key. Default: $SCALPEL_API_KEY, then the config file.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="Config TOML. Default: $SCALPEL_CONFIG or ~/.config/scalpel/config.toml."
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    ctx.obj = State(url=url, api_key=api_key, config=config, json=json_output)


jobs.register(app)
files.register(app)
recipes.register(app)

if __name__ == "__main__":
    app()
