"""Real processes for end-to-end tests: the API over HTTP and a Celery worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("succeeded", "failed", "canceled")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        STORAGE_DIR=str(tmp / "artifacts"),
        WORK_DIR=str(tmp / "work"),
        BROKER_DIR=str(tmp / "broker"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        TORCH_THREADS="2",
    )
    env.update(extra)
    return env


@contextmanager
def process(
    args: list[str], env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def worker_args() -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "-Q", "compress", "--concurrency", "1", "--loglevel", "INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip


def create_api_key(env: Mapping[str, str], tenant: str = "e2e") -> str:
    """A key made the documented way, `python -m app create-api-key`, on env's database."""
    proc = subprocess.run(
        [sys.executable, "-m", "app", "create-api-key", "--tenant", tenant], cwd=ROOT,
        env=dict(env), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def authorize(client: httpx.Client, key: str) -> httpx.Client:
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def wait_ready(
    client: httpx.Client, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 120
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"not ready in {timeout_s} s:\n{log.read_text()[-4000:]}")


def wait_job(
    client: httpx.Client, job_id: str, logs: list[Path], timeout_s: float = 600
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.5)
    tails = "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in logs)
    raise AssertionError(f"job {job_id} still {job.get('status')} after {timeout_s} s\n{tails}")
