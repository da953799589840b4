"""One real API server for the client tests (see server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scalpel_client import ScalpelClient
from tests.client.server import Server, running_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("client-api")) as s:
        yield s


@pytest.fixture
def client(server: Server) -> Iterator[ScalpelClient]:
    with ScalpelClient(server.url, server.api_key) as c:
        yield c
