"""A real API server with seeded jobs, and headless Chromium (Debian's, not a downloaded one)
driven by playwright. The browser tests skip only when Chromium cannot be found or started."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.app.dashboard.chromium import VIEWPORT, NoChromium, launch
from tests.app.dashboard.seed import Seeded, seed
from tests.client.server import Server, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("dashboard-api")) as s:
        yield s


@pytest.fixture(scope="module")
def seeded(server: Server) -> Seeded:
    return seed(server)


# Package scope: playwright's sync API keeps an event loop running on this thread while it is
# started, so it must stop before later packages' tests call asyncio.run (tests/client).
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright not installed: pip install -e '.[dev]'")
    pw = sync_playwright().start()
    try:
        browser = launch(pw)
    except NoChromium as why:
        pw.stop()
        pytest.skip(str(why))
    yield browser
    browser.close()
    pw.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True, viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()
