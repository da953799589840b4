"""A real API server with seeded jobs, and headless Chromium (Debian's, not a downloaded one)
driven by playwright. The browser tests skip only when Chromium cannot be found or started."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.app.client.server import Server, running_server
from tests.app.dashboard.seed import Seeded, seed

CHROMIUM_HINT = "apt-get install chromium"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("dashboard-api")) as s:
        yield s


@pytest.fixture(scope="module")
def seeded(server: Server) -> Seeded:
    return seed(server)


def chromium_path() -> str | None:
    return (
        os.environ.get("CHROMIUM_PATH")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright not installed: pip install -e '.[dev]'")
    exe = chromium_path()
    if exe is None:
        pytest.skip(f"chromium not installed: {CHROMIUM_HINT}")
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(
            executable_path=exe, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
    except Exception as exc:  # any launch failure: no usable browser here
        pw.stop()
        pytest.skip(f"chromium at {exe} could not be launched ({CHROMIUM_HINT}): {exc}")
    yield browser
    browser.close()
    pw.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()
