"""The Scalpel Python client: httpx only (no server, worker or torch code is imported).

from scalpel_client import ScalpelClient
with ScalpelClient() as client:  # SCALPEL_URL / SCALPEL_API_KEY / config file
    job = client.submit_job({"recipe": "obert-80", "model": "minilm-l6",
                             "dataset": {"name": "sst2"}})
    with client.stream_events(job["id"]) as events:
        for event in events:
            print(event["kind"], event["stage"], event["progress"])
    client.download_artifact(job["id"], "model", "out/")

Receivers of its webhooks: scalpel_client.webhooks.verify(secret, headers, body).
"""

from scalpel_client.aio import AsyncEventStream, AsyncScalpelClient
from scalpel_client.base import JSON, TERMINAL_STATUSES
from scalpel_client.config import ClientConfig, resolve_config
from scalpel_client.errors import (
    DigestMismatchError,
    ScalpelAPIError,
    ScalpelConnectionError,
    ScalpelError,
    ScalpelTimeoutError,
)
from scalpel_client.retry import RetryPolicy
from scalpel_client.sync import EventStream, ScalpelClient
from scalpel_client.types import (
    Artifact,
    EventPage,
    Job,
    JobDryRun,
    JobError,
    JobEvent,
    JobLinks,
    JobStatus,
    MemoryEstimate,
    Recipe,
    TimeEstimate,
    UploadedDataset,
    UploadedModel,
)

__version__ = "0.1.0"

__all__ = [
    "JSON",
    "TERMINAL_STATUSES",
    "Artifact",
    "AsyncEventStream",
    "AsyncScalpelClient",
    "ClientConfig",
    "DigestMismatchError",
    "EventPage",
    "EventStream",
    "Job",
    "JobDryRun",
    "JobError",
    "JobEvent",
    "JobLinks",
    "JobStatus",
    "MemoryEstimate",
    "Recipe",
    "RetryPolicy",
    "ScalpelAPIError",
    "ScalpelClient",
    "ScalpelConnectionError",
    "ScalpelError",
    "ScalpelTimeoutError",
    "TimeEstimate",
    "UploadedDataset",
    "UploadedModel",
    "resolve_config",
]
