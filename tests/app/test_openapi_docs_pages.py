"""/docs and /redoc work offline: every script, style and icon they name is a local URL that
the app serves itself, with the right content type, and nothing in the pages points off the
server."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from app.main import create_app

CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
}
# What each page's bundle must define: a served file that is not the real bundle fails.
BUNDLE_MARKERS = {"swagger-ui-bundle.js": "SwaggerUIBundle", "redoc.standalone.js": "Redoc"}


class Refs(HTMLParser):
    """Every src= and href= in a page, with the tag that holds it."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.spec_urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append((tag, value))
            if name == "spec-url" and value is not None:
                self.spec_urls.append(value)


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app())


def local(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and url.startswith("/")


@pytest.mark.parametrize(
    ("page", "needs"),
    [("/docs", {"swagger-ui-bundle.js", "swagger-ui.css"}), ("/redoc", {"redoc.standalone.js"})],
)
def test_page_names_only_local_assets_that_are_served(
    client: TestClient, page: str, needs: set[str]
) -> None:
    r = client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?://", r.text), "the page names an outside URL"
    parser = Refs()
    parser.feed(r.text)
    assert {url.rsplit("/", 1)[-1] for _, url in parser.refs} >= needs
    for tag, url in parser.refs:
        assert local(url), (tag, url)
        asset = client.get(url)
        assert asset.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert asset.headers["content-type"].startswith(CONTENT_TYPES[suffix]), url
        marker = BUNDLE_MARKERS.get(url.rsplit("/", 1)[-1])
        if marker is not None:
            assert marker in asset.text, url


def test_pages_load_the_apps_own_openapi_document(client: TestClient) -> None:
    swagger = client.get("/docs").text
    assert re.search(r"url: '/openapi\.json'", swagger)
    assert '"validatorUrl": null' in swagger  # no document URL sent to a public validator
    parser = Refs()
    parser.feed(client.get("/redoc").text)
    assert parser.spec_urls == ["/openapi.json"]
    assert client.get("/openapi.json").json()["info"]["title"] == "Scalpel"


def test_assets_outside_the_bundle_are_404(client: TestClient) -> None:
    assert client.get("/docs/assets/nope.js").status_code == 404
    assert client.get("/docs/assets/%2E%2E%2Fcore.py").status_code == 404


def test_pages_behind_a_proxy_prefix_name_prefixed_urls() -> None:
    client = TestClient(create_app(), root_path="/scalpel")
    swagger, redoc = client.get("/docs").text, client.get("/redoc").text
    assert '<script src="/scalpel/docs/assets/swagger-ui-bundle.js">' in swagger
    assert "url: '/scalpel/openapi.json'" in swagger
    assert '<redoc spec-url="/scalpel/openapi.json">' in redoc
