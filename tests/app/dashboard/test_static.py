"""The dashboard's files: served without a key, under a strict CSP, with no inline script and
no innerHTML in the scripts."""

from __future__ import annotations

import re

import httpx
import pytest

from app.dashboard.router import CSP, FILES, STATIC_DIR
from tests.client.server import Server


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/", "/dashboard/static/app.js"])
def test_served_without_a_key_under_csp(server: Server, path: str) -> None:
    r = httpx.get(f"{server.url}{path}", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    expected = "text/html" if "static" not in path else "text/javascript"
    assert r.headers["content-type"].startswith(expected)


@pytest.mark.parametrize("name", ["nope.js", "..%2Frouter.py", "%2E%2E%2F__init__.py"])
def test_only_shipped_files(server: Server, name: str) -> None:
    assert httpx.get(f"{server.url}/dashboard/static/{name}", timeout=10).status_code == 404


def test_csp_and_no_dynamic_html() -> None:
    assert "default-src 'self'" in CSP and "img-src 'self' blob: data:" in CSP
    assert "unsafe-inline" not in CSP
    html = (STATIC_DIR / "index.html").read_text()
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts and all("src=" in tag for tag in scripts)  # no inline scripts
    assert not re.search(r"<[^>]+\son\w+=", html)  # no inline event handlers
    banned = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(")
    for name, path in FILES.items():
        if name.endswith(".js"):
            assert not banned.search(path.read_text()), name


def test_static_files_ship_as_package_data() -> None:
    assert {"index.html", "app.js", "style.css"} <= set(FILES)


def test_every_imported_module_ships() -> None:
    """A module the page imports but the router does not serve would break the whole page."""
    imported = {"app.js"}  # index.html's entry point
    for path in STATIC_DIR.glob("*.js"):
        imported |= set(re.findall(r'from "\./([\w-]+\.js)"', path.read_text()))
        imported |= set(re.findall(r'import\("/dashboard/static/([\w-]+\.js)"\)', path.read_text()))
    assert {"summary.js", "steps.js", "spec.js", "units.js"} <= imported  # the reader works
    assert imported <= set(FILES)
