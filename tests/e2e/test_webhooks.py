"""Webhooks on real processes (the API, a Celery worker on Redis, the registry on
PostgreSQL): a job with a webhook_url ends, the worker's dispatcher POSTs the event to a
receiver on loopback that fails twice (500) and then accepts it. The receiver sees three
attempts of one message (one webhook-id), each signed with the tenant's secret, and the
delivery log shows them."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.webhooks.signing import verify
from tests.e2e.harness import base_env, create_api_key, free_port, process, wait_ready, worker_args
from tests.e2e.processes import backing_services, insert_tiny_model
from tests.e2e.test_faults import tiny_spec

pytestmark = pytest.mark.e2e
TENANT = "hooks"


class Received:
    def __init__(self, codes: list[int]) -> None:
        self.codes = codes
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()


@contextmanager
def receiver(codes: list[int]) -> Iterator[tuple[str, Received]]:
    """An HTTP server on 127.0.0.1 answering POSTs with `codes` in turn (then 200)."""
    got = Received(codes)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with got.lock:
                got.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = got.codes.pop(0) if got.codes else 200
            self.send_response(code)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/scalpel", got
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_is_retried_signed_and_logged(tmp_path: Path) -> None:
    with backing_services(tmp_path, redis_db=11) as svc, receiver([500, 500]) as (url, got):
        port = free_port()
        env = base_env(
            tmp_path, DATABASE_URL=svc.db_url, REDIS_URL=svc.redis_url, PORT=str(port),
            REAPER_INTERVAL_S="0", WEBHOOK_ALLOW='["loopback"]',
            WEBHOOK_DISPATCH_INTERVAL_S="0.3", WEBHOOK_BACKOFF_BASE_S="0.5",
            WEBHOOK_BACKOFF_CAP_S="1", WEBHOOK_TIMEOUT_S="5",
        )  # fmt: skip
        token = create_api_key(env, TENANT)
        model_id = insert_tiny_model(svc.engine, tmp_path, tmp_path / "artifacts", TENANT)
        logs = [tmp_path / "api.log", tmp_path / "worker.log"]
        with (
            process([sys.executable, "-m", "app", "serve"], env, logs[0]) as api,
            process(worker_args(), env, logs[1]),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                         headers={"Authorization": f"Bearer {token}"}) as client,
        ):  # fmt: skip
            wait_ready(client, api, logs[0])
            rotated = client.post("/v1/webhook-secrets")
            assert rotated.status_code == 201, rotated.text
            secret = rotated.json()["secret"]
            r = client.post("/v1/jobs", json={**tiny_spec(model_id, steps=2), "webhook_url": url})
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]

            deadline = time.monotonic() + 90
            deliveries: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                deliveries = client.get(f"/v1/jobs/{job_id}/webhook-deliveries").json()["items"]
                if deliveries and deliveries[0]["status"] != "pending":
                    break
                time.sleep(0.3)
            tails = "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in logs)
            assert deliveries and deliveries[0]["status"] == "succeeded", (deliveries, tails)

        [d] = deliveries
        assert d["event_type"] == "job.succeeded" and d["attempts"] == 3
        assert [a["status_code"] for a in d["attempt_log"]] == [500, 500, 200]
        assert len(got.requests) == 3
        assert {h["webhook-id"] for h, _ in got.requests} == {d["msg_id"]}
        for headers, body in got.requests:
            verify(secret, headers, body)
            assert headers["content-type"] == "application/json"
        event = httpx.Response(200, content=got.requests[-1][1]).json()
        assert event["type"] == "job.succeeded"
        assert event["data"]["job_id"] == job_id and event["data"]["status"] == "succeeded"
        assert event["data"]["artifacts_url"] == f"/v1/jobs/{job_id}/artifacts"
