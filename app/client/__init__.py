"""The Scalpel Python client (httpx only: no server or worker code is imported).

from app.client import ScalpelClient
with ScalpelClient() as client:  # SCALPEL_URL / SCALPEL_API_KEY / config file
    job = client.submit_job({"model": "minilm-l6", "dataset": {"name": "sst2"}})
    client.wait(job["id"], on_update=lambda j: ...)
    client.download_artifact(job["id"], "model", "out/")
"""

from app.client.aio import AsyncScalpelClient
from app.client.base import JSON, TERMINAL_STATUSES
from app.client.config import ClientConfig, resolve_config
from app.client.errors import (
    DigestMismatchError,
    ScalpelAPIError,
    ScalpelConnectionError,
    ScalpelError,
    ScalpelTimeoutError,
)
from app.client.retry import RetryPolicy
from app.client.sync import ScalpelClient

__all__ = [
    "JSON",
    "TERMINAL_STATUSES",
    "AsyncScalpelClient",
    "ClientConfig",
    "DigestMismatchError",
    "RetryPolicy",
    "ScalpelAPIError",
    "ScalpelClient",
    "ScalpelConnectionError",
    "ScalpelError",
    "ScalpelTimeoutError",
    "resolve_config",
]
