"""Debian's Chromium (not a downloaded one) under playwright: found and launched here for the
browser tests (conftest) and scripts/dashboard_screenshots.py."""

from __future__ import annotations

import os
import shutil
from typing import Any

CHROMIUM_HINT = "apt-get install chromium (make browser)"
VIEWPORT = {"width": 1280, "height": 800}


class NoChromium(RuntimeError):
    """Why there is no usable browser here."""


def chromium_path() -> str | None:
    return (
        os.environ.get("CHROMIUM_PATH")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


def launch(playwright: Any) -> Any:
    """A headless Chromium browser; NoChromium says why not."""
    exe = chromium_path()
    if exe is None:
        raise NoChromium(f"chromium not installed: {CHROMIUM_HINT}")
    try:
        return playwright.chromium.launch(
            executable_path=exe, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
    except Exception as exc:  # any launch failure: no usable browser here
        why = f"chromium at {exe} could not be launched ({CHROMIUM_HINT}): {exc}"
        raise NoChromium(why) from exc


def login(page: Any, url: str, key: str, hash_: str = "") -> None:
    """Open the dashboard at url (#hash_) and give it the key."""
    page.goto(f"{url}/dashboard/{hash_}")
    page.fill("#api-key", key)
    page.click("#login button[type=submit]")
