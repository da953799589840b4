"""What the sync and async clients share: headers, request shapes and response handling."""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar, cast
from urllib.parse import quote

import httpx

from scalpel_client.config import ClientConfig, resolve_config
from scalpel_client.errors import ScalpelAPIError, ScalpelConnectionError, ScalpelError
from scalpel_client.retry import RetryPolicy
from scalpel_client.types import Artifact, Job, JobStatus

JSON = dict[str, Any]
T = TypeVar("T")
OnUpdate = Callable[[Job], None]
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


def upload_path(kind: str, upload_id: str) -> str:
    """/v1/models/{id} or /v1/datasets/{id} (kind: "models" or "datasets")."""
    return f"/v1/{kind}/{quote(str(upload_id), safe='')}"


def submission(
    spec: Mapping[str, Any], name: str | None, labels: Mapping[str, str] | None
) -> dict[str, Any]:
    """The body of POST /v1/jobs: the spec, with the job's name and labels over its own."""
    body = dict(spec)
    if name is not None:
        body["name"] = name
    if labels is not None:
        body["labels"] = dict(labels)
    return body


def timestamp(value: str | datetime | None, name: str) -> str | None:
    """An RFC 3339 date-time for a query: a string as given, a datetime with its offset (a
    naive one is refused: the API would not know its time zone)."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: a datetime with a time zone (tzinfo), not a naive one")
    return value.isoformat()


def job_filters(
    status: JobStatus | Sequence[JobStatus] | None = None,
    model: str | None = None,
    dataset: str | None = None,
    recipe: str | None = None,
    labels: Mapping[str, str] | None = None,
    created_after: str | datetime | None = None,
    created_before: str | datetime | None = None,
) -> dict[str, Any]:
    """The query of GET /v1/jobs: status and label repeated, each filter left out when None."""
    statuses = [status] if isinstance(status, str) else list(status or ())
    out: dict[str, Any] = {
        "status": statuses or None, "model": model, "dataset": dataset, "recipe": recipe,
        "label": [f"{k}={v}" for k, v in (labels or {}).items()] or None,
        "created_after": timestamp(created_after, "created_after"),
        "created_before": timestamp(created_before, "created_before"),
    }  # fmt: skip
    return {k: v for k, v in out.items() if v is not None}


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


def typed(body: Mapping[str, Any], kind: type[T]) -> T:
    """body as the typed dict `kind` (scalpel_client.types), once it has that type's keys."""
    required: frozenset[str] = getattr(kind, "__required_keys__", frozenset())
    missing = sorted(required - body.keys())
    if missing:
        raise ScalpelError(f"the API's {kind.__name__} lacks {', '.join(missing)}")
    return cast(T, body)


def decode_typed(response: httpx.Response, kind: type[T]) -> T:
    return typed(decode_object(response), kind)


def typed_items(items: list[JSON], kind: type[T]) -> list[T]:
    return [typed(item, kind) for item in items]


def connection_error(
    method: str, http: httpx.Client | httpx.AsyncClient, path: str, exc: Exception
) -> ScalpelConnectionError:
    """What a request that never got an answer raises: the full URL it tried, and why."""
    return ScalpelConnectionError(method, full_url(http, path), exc)


def full_url(http: httpx.Client | httpx.AsyncClient, path: str) -> str:
    """path under the client's base URL, as httpx sends it (an absolute URL as it is)."""
    if "://" in path:
        return path
    return str(http.base_url).rstrip("/") + "/" + path.lstrip("/")


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


def find_artifact(artifacts: list[Artifact], name: str) -> Artifact:
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


def job_changed(previous: Job | None, job: Job) -> bool:
    keys = ("status", "stage", "progress", "metrics", "updated_at", "cancel_requested")
    return previous is None or any(previous.get(k) != job.get(k) for k in keys)


def is_terminal(job: Job) -> bool:
    return job.get("status") in TERMINAL_STATUSES
