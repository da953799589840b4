"""Response bodies shaped as the API sends them, for the mocked-transport tests."""

from __future__ import annotations

from typing import Any

WHEN = "2025-01-02T10:00:00Z"


def job(job_id: str = "j1", status: str = "queued", **fields: Any) -> dict[str, Any]:
    base = f"/v1/jobs/{job_id}"
    body: dict[str, Any] = {
        "id": job_id, "name": None, "labels": {}, "status": status, "stage": None, "progress": 0.0,
        "cancel_requested": False, "spec": {"model": "minilm-l6"}, "metrics": {}, "error": None,
        "created_at": WHEN, "started_at": None, "finished_at": None, "updated_at": WHEN,
        "links": {"self": base, "artifacts": f"{base}/artifacts", "events": f"{base}/events"},
        "webhook": None, "eta_seconds": None, "eta_at": None,
    }  # fmt: skip
    return {**body, **fields}


def event(event_id: int, kind: str = "status", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": event_id, "kind": kind, "status": None, "stage": None, "progress": None,
        "message": None, "data": None, "created_at": WHEN,
    }  # fmt: skip
    return {**body, **fields}
