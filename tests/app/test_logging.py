"""Structured logs: JSON lines with job_id and request_id from the API middleware and from the
worker's run_job."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from app.logging import configure_logging, log_context
from app.settings import Settings
from tests.app.conftest import MakeClient


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Logging configured (json) onto a buffer; the root logger is restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging(Settings(log_format="json", log_level="INFO"), stream)
    yield stream
    root.handlers, level = saved
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_api_lines_carry_request_and_job_ids(
    make_client: MakeClient, log_stream: io.StringIO
) -> None:
    client = make_client()
    job_id = str(uuid.uuid4())
    r = client.get(f"/v1/jobs/{job_id}/events", headers={"X-Request-ID": "req-123"})
    assert r.status_code == 404
    assert r.headers["x-request-id"] == "req-123"
    access = [x for x in lines(log_stream) if x["logger"] == "scalpel.access"]
    assert access, log_stream.getvalue()
    line = access[-1]
    assert set(line) >= {"ts", "level", "logger", "message", "job_id", "request_id"}
    assert line["job_id"] == job_id and line["request_id"] == "req-123"
    assert line["level"] == "INFO" and f"/v1/jobs/{job_id}/events 404" in line["message"]
    # generated when absent (or unusable), and no job id off the job paths
    r = client.get("/healthz", headers={"X-Request-ID": "bad id"})
    generated = r.headers["x-request-id"]
    assert len(generated) == 32 and generated != "bad id"
    last = [x for x in lines(log_stream) if x["logger"] == "scalpel.access"][-1]
    assert last["request_id"] == generated and "job_id" not in last


def test_worker_lines_carry_the_job_id(
    log_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker import runner

    def fake_run(job_id: Any, **_: Any) -> str:
        logging.getLogger("worker.pipelines.compress").info("pruning step done")
        return "succeeded"

    monkeypatch.setattr(runner, "_run_job", fake_run)
    job_id = uuid.uuid4()
    assert runner.run_job(job_id) == "succeeded"
    logging.getLogger("worker.tasks").info("outside any job")
    got = lines(log_stream)
    assert got[0]["message"] == "pruning step done" and got[0]["job_id"] == str(job_id)
    assert "job_id" not in got[1]
    with log_context(job_id="j-1"):
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("worker").exception("failed")
    last = lines(log_stream)[-1]
    assert last["job_id"] == "j-1" and last["level"] == "ERROR" and "boom" in last["exc_info"]


def test_text_format(log_stream: io.StringIO) -> None:
    stream = io.StringIO()
    configure_logging(Settings(log_format="text"), stream)
    with log_context(job_id="j-2"):
        logging.getLogger("scalpel").warning("hello")
    assert "WARNING scalpel [job=j-2] hello" in stream.getvalue()
