"""Global options, the client they make, output helpers, and errors -> messages and exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from scalpel_client import (
    DigestMismatchError,
    ScalpelAPIError,
    ScalpelClient,
    ScalpelConnectionError,
    ScalpelError,
    ScalpelTimeoutError,
)


class Exit(IntEnum):
    OK = 0
    ERROR = 1  # the API refused the request, or another client-side failure
    USAGE = 2  # bad command line (click's own code)
    JOB_FAILED = 3
    JOB_CANCELED = 4
    UNREACHABLE = 5  # could not connect to the API
    DIGEST_MISMATCH = 6
    TIMEOUT = 7
    INTERRUPTED = 130


@dataclass
class State:
    url: str | None = None
    api_key: str | None = None
    config: Path | None = None
    json: bool = False

    @property
    def err(self) -> Console:
        return Console(stderr=True, highlight=False)

    @property
    def out(self) -> Console:
        """stdout; wide when it is not a terminal, so piped tables are not folded."""
        console = Console(highlight=False)
        if not console.is_terminal:
            console.width = max(console.width, 200)
        return console


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, State) else State()


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def fail(st: State, code: Exit, message: str, problem: dict[str, Any] | None = None) -> NoReturn:
    if st.json:
        typer.echo(json.dumps({"error": problem or {"detail": message}}, default=str), err=True)
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(int(code))


def describe(exc: ScalpelAPIError) -> str:
    text = f"{exc.code} ({exc.status}): {exc.detail or exc.title}"
    if exc.fields:
        text += f" [field: {', '.join(exc.fields)}]"
    return text


def unreachable(base_url: str, exc: ScalpelConnectionError) -> str:
    """One line: the API's base URL, why, and the request that found it down."""
    return f"cannot reach the API at {base_url}: {exc.reason} ({exc.method} {exc.url})"


@contextmanager
def api(ctx: typer.Context) -> Iterator[ScalpelClient]:
    """A client from the global options; client errors end the command with a clear message."""
    st = state(ctx)
    clients: list[ScalpelClient] = []
    try:
        with ScalpelClient(st.url, st.api_key, config_path=st.config) as client:
            clients.append(client)
            yield client
    except ScalpelAPIError as exc:
        problem = exc.body if isinstance(exc.body, dict) else {"status": exc.status,
                                                                "code": exc.code}  # fmt: skip
        fail(st, Exit.ERROR, describe(exc), problem)
    except ScalpelConnectionError as exc:
        base_url = clients[0].config.url if clients else exc.url
        message = unreachable(base_url, exc)
        fail(st, Exit.UNREACHABLE, message, {"detail": message, "url": base_url})
    except DigestMismatchError as exc:
        fail(st, Exit.DIGEST_MISMATCH, str(exc))
    except ScalpelTimeoutError as exc:
        fail(st, Exit.TIMEOUT, str(exc))
    except ScalpelError as exc:
        fail(st, Exit.ERROR, str(exc))
    except KeyboardInterrupt:
        fail(st, Exit.INTERRUPTED, "interrupted")
