"""/dashboard: the page shell and its static files, under a strict Content-Security-Policy.
Nothing here reads data: the page's scripts call the JSON API with the user's key."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(prefix="/dashboard", include_in_schema=False)


def _files() -> dict[str, Path]:
    """The servable files by name: only what ships in static/, so no path ever escapes it."""
    return {p.name: p for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in MEDIA_TYPES}


FILES = _files()


def _serve(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise HTTPException(status_code=404, detail="no such dashboard file")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=HEADERS)


@router.get("")
@router.get("/")
def dashboard() -> FileResponse:
    """The page shell; jobs live at /dashboard/#/jobs/{id}."""
    return _serve("index.html")


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    return _serve(name)
