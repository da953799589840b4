"""What the browser tests do on a dashboard page."""

from __future__ import annotations

from typing import Any

from tests.app.dashboard import chromium
from tests.client.server import Server


def login(page: Any, server: Server, key: str | None = None, hash_: str = "") -> None:
    chromium.login(page, server.url, key or server.api_key, hash_)


def row(page: Any, job_id: str) -> Any:
    return page.locator(f'tr[data-job-id="{job_id}"]')


def no_script_errors(page: Any) -> None:
    assert [e for e in page.errors if "Failed to load resource" not in e] == []
    assert page.evaluate("window.__xss") is None
