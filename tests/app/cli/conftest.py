"""A real API server for the CLI tests, and `cli(...)`: the typer app under CliRunner with the
server's URL and key in the environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from typer.testing import CliRunner, Result

from app.cli.main import app
from tests.client.server import Server, running_server

Cli = Callable[..., Result]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("cli-api")) as s:
        yield s


@pytest.fixture
def cli(server: Server) -> Cli:
    runner = CliRunner()
    env = {"SCALPEL_URL": server.url, "SCALPEL_API_KEY": server.api_key, "SCALPEL_CONFIG": None}

    def _run(*args: str, **extra_env: str) -> Result:
        return runner.invoke(app, list(args), env={**env, **extra_env}, catch_exceptions=False)

    return _run
