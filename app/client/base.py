"""What the sync and async clients share: headers, request shapes and response handling."""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

from app.client.config import ClientConfig, resolve_config
from app.client.errors import ScalpelAPIError, ScalpelError
from app.client.retry import RetryPolicy

JSON = dict[str, Any]
OnUpdate = Callable[[JSON], None]
OnProgress = Callable[[int, int | None], None]
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})
USER_AGENT = "scalpel-client/0.1"
_MEDIA_TYPES = {".zip": "application/zip", ".gz": "application/gzip", ".tgz": "application/gzip",
                ".csv": "text/csv", ".tsv": "text/tab-separated-values",
                ".jsonl": "application/jsonl"}  # fmt: skip


@dataclass
class Upload:
    """A multipart upload: the file, and the form fields next to it."""

    path: Path
    fields: dict[str, str] = field(default_factory=dict)

    def files(self, handle: IO[bytes]) -> dict[str, tuple[str, IO[bytes], str]]:
        media = _MEDIA_TYPES.get(self.path.suffix.lower()) or (
            mimetypes.guess_type(self.path.name)[0] or "application/octet-stream"
        )
        return {"file": (self.path.name, handle, media)}


class ClientBase:
    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        config_path: str | Path | None = None,
        retry: RetryPolicy | None = None,
        config: ClientConfig | None = None,
    ) -> None:
        self.config = config or resolve_config(
            url, api_key, timeout=timeout, config_path=config_path
        )
        self.retry = retry or RetryPolicy()

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        return headers


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def job_path(job_id: str, *rest: str) -> str:
    return "/".join(("/v1/jobs", quote(str(job_id), safe=""), *rest))


def decode(response: httpx.Response) -> Any:
    """The JSON body of a success, or ScalpelAPIError built from the problem JSON."""
    if response.status_code >= 400:
        raise ScalpelAPIError.from_response(response)
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise ScalpelError(f"the API answered {response.status_code} with non-JSON") from exc


def decode_object(response: httpx.Response) -> JSON:
    body = decode(response)
    if not isinstance(body, dict):
        raise ScalpelError(f"expected a JSON object, got {type(body).__name__}")
    return body


def page_params(params: Mapping[str, Any], token: str | None) -> dict[str, Any]:
    out = {k: v for k, v in params.items() if v is not None}
    if token:
        out["page_token"] = token
    return out


def page_items(page: JSON) -> tuple[list[JSON], str | None]:
    items = page.get("items")
    token = page.get("next_page_token")
    if not isinstance(items, list):
        raise ScalpelError("a page without 'items'")
    return [i for i in items if isinstance(i, dict)], token if isinstance(token, str) else None


def find_artifact(artifacts: list[JSON], name: str) -> JSON:
    """By id, kind or filename, in that order."""
    for key in ("id", "kind", "filename"):
        for art in artifacts:
            if str(art.get(key)) == name:
                return art
    known = ", ".join(sorted(str(a.get("kind")) for a in artifacts)) or "none"
    raise ScalpelError(f"no artifact {name!r} (artifacts: {known})")


def model_upload(path: str | Path, name: str | None) -> Upload:
    fields = {"name": name} if name else {}
    return Upload(_existing(path), fields)


def dataset_upload(
    path: str | Path,
    name: str | None,
    text_columns: str | list[str] | None,
    label_column: str | None,
    fmt: str | None,
    task: str | None = None,
    tag_column: str | None = None,
    tag_scheme: str | None = None,
) -> Upload:
    columns = ",".join(text_columns) if isinstance(text_columns, list) else text_columns
    raw = {"name": name, "text_columns": columns, "label_column": label_column, "format": fmt,
           "task": task, "tag_column": tag_column, "tag_scheme": tag_scheme}  # fmt: skip
    return Upload(_existing(path), {k: v for k, v in raw.items() if v})


def _existing(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ScalpelError(f"{p} is not a file")
    return p


def job_changed(previous: JSON | None, job: JSON) -> bool:
    keys = ("status", "stage", "progress", "metrics", "updated_at", "cancel_requested")
    return previous is None or any(previous.get(k) != job.get(k) for k in keys)


def is_terminal(job: JSON) -> bool:
    return job.get("status") in TERMINAL_STATUSES
