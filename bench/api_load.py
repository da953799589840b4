"""Benchmark: the API under read load while a job runs (issue 5).

Starts the production parts on loopback: PostgreSQL (a fresh database), Redis, the API under
uvicorn (``--workers``), one Celery worker running a real compression job (a tiny BERT with
enough training steps to outlast the load). Then ``wrk`` (a real HTTP load generator) opens
200 connections for 60 s: most read one job's status (``GET /v1/jobs/{id}``), the rest list
jobs (``GET /v1/jobs?limit=20``). It records throughput, p50/p99 latency and errors for each,
and the job's progress rate (progress per second, read from the API) before and during the
load. The last line printed is one JSON object.

Two ways to load it. By default every connection sends its next request the moment the last
one is answered: that measures the most the API serves, and by Little's law its latency is
then connections / throughput (200 connections at 1,000/s wait 200 ms whatever the server
does). ``--rate R`` makes the status connections behave like polling clients that pause
between responses so that together they aim at R reads/s (``--list-rate`` likewise for the
list): that measures the latency a client sees at that load.

``--pin`` lays the processes out as in production, where the API and the compression workers
run on different machines: the worker on the last core, the API processes and wrk on the
others (``taskset``); PostgreSQL and Redis stay unpinned. Without it everything shares every
core.

Usage: ``python bench/api_load.py [--duration 60] [--connections 200] [--api-workers 2]
[--rate 1200 --list-rate 100] [--pin]``; needs ``wrk`` (Debian's package) on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command
from bench.common import machine
from tests.conftest import alembic_config, create_database, drop_database
from tests.e2e.harness import (
    authorize,
    base_env,
    create_api_key,
    free_port,
    process,
    wait_ready,
    worker_args,
)
from tests.factories.tiny_bert import archive, write_tiny_bert

REDIS_URL = "redis://127.0.0.1:6379/13"
LUA = """
local path = "%s"
local pause_ms = %d
request = function()
  return wrk.format("GET", path, {["Authorization"] = "Bearer %s"})
end
if pause_ms > 0 then
  -- a polling client: a pause of pause_ms on average (uniform 0.5x..1.5x) between responses
  delay = function()
    return math.random(math.floor(pause_ms / 2), math.floor(pause_ms * 3 / 2))
  end
end
"""


def long_job(model_id: str, steps: int) -> dict[str, Any]:
    return {
        "model": model_id,
        "dataset": {"name": "tweets", "max_train_examples": 512, "max_eval_examples": 64,
                    "max_length": 64},
        "pruning": {"method": "magnitude", "sparsity": 0.5},
        "training": {"max_steps": steps, "recovery_max_steps": steps, "batch_size": 16},
    }  # fmt: skip


def pause(connections: int, rate: float) -> int:
    """The mean pause (ms) of each of `connections` polling clients for `rate` requests/s in
    all (0: no pause). Response time adds to it, so the achieved rate is a little lower."""
    return round(1000.0 * connections / rate) if rate > 0 else 0


def parse_wrk(text: str) -> dict[str, Any]:
    """wrk's report: requests, requests/s, latency (mean, stdev, max and percentiles, ms) and
    every kind of error it counts (socket errors by kind, non-2xx), with their totals."""

    def ms(value: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
        return round(float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit], 3)

    out: dict[str, Any] = {}
    m = re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read", text)
    out["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["requests_per_s"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if m:
        out["latency_mean_ms"], out["latency_stdev_ms"], out["latency_max_ms"] = (
            ms(m.group(1)), ms(m.group(2)), ms(m.group(3))
        )  # fmt: skip
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        if m:
            out[f"p{pct}_ms"] = ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    names = ("connect", "read", "write", "timeout")
    socket = dict(zip(names, (int(x) for x in m.groups()), strict=True)) if m else {}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    out["socket_errors"] = sum(socket.values())
    out["errors"] = {**dict.fromkeys(names, 0), **socket, "non_2xx": out["non_2xx"]}
    out["errors_total"] = out["socket_errors"] + out["non_2xx"]
    return out


@dataclass
class RunningJob:
    client: httpx.Client  # sends the key
    key: str
    port: int
    job_id: str
    job: dict[str, Any]  # as first read running
    tmp: Path  # api.log and worker.log are here


@contextmanager
def job_running(
    *, name: str, redis_url: str, steps: int, api_cmd: Callable[[int], list[str]],
    worker_cmd: Callable[[list[str]], list[str]], env: dict[str, str],
) -> Iterator[RunningJob]:  # fmt: skip
    """PostgreSQL (a fresh database, dropped after), Redis (flushed), the API (`api_cmd(port)`)
    and one worker (`worker_cmd(worker_args())`); a tiny BERT uploaded and a real job on it
    (`long_job(steps)`) running by the time this yields."""
    db_name = f"scalpel_{name}_{int(time.time())}"
    db_url = create_database(db_name)
    command.upgrade(alembic_config(db_url), "head")
    redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        full_env = base_env(tmp, DATABASE_URL=db_url, REDIS_URL=redis_url, PORT=str(port), **env)
        try:
            with (
                process(api_cmd(port), full_env, tmp / "api.log") as api,
                process(worker_cmd(worker_args()), full_env, tmp / "worker.log"),
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
            ):
                wait_ready(client, api, tmp / "api.log")
                key = create_api_key(full_env, name)
                authorize(client, key)
                path = archive(write_tiny_bert(tmp / "tiny"), tmp / "tiny.zip", "zip")
                with path.open("rb") as f:
                    r = client.post(
                        "/v1/models", files={"file": ("tiny.zip", f, "application/zip")}
                    )
                r.raise_for_status()
                r = client.post("/v1/jobs", json=long_job(r.json()["id"], steps))
                r.raise_for_status()
                job_id = r.json()["id"]
                deadline = time.monotonic() + 180
                while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] != "running":
                    if time.monotonic() > deadline or job["status"] in ("failed", "canceled"):
                        raise SystemExit(f"the job did not start: {job}")
                    time.sleep(0.5)
                try:
                    yield RunningJob(client, key, port, job_id, job, tmp)
                finally:
                    client.post(f"/v1/jobs/{job_id}/cancel")
        finally:
            drop_database(db_name)


def emit(result: dict[str, Any], out: Path | None) -> None:
    """The result as one JSON line: printed last, and written to `out` when given."""
    line = json.dumps(result)
    if out is not None:
        out.write_text(line + "\n")
    print(line, flush=True)


def progress_sampler(
    client: httpx.Client,
    job_id: str,
    samples: list[tuple[float, float, str]],
    stop: threading.Event,
) -> None:
    while not stop.is_set():
        try:
            job = client.get(f"/v1/jobs/{job_id}").json()
            samples.append((time.monotonic(), float(job["progress"]), str(job["status"])))
        except httpx.HTTPError:
            pass
        stop.wait(1.0)


def rate(samples: list[tuple[float, float, str]], start: float, end: float) -> float | None:
    window = [s for s in samples if start <= s[0] <= end and s[2] == "running"]
    if len(window) < 2 or window[-1][0] == window[0][0]:
        return None
    return (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=int, default=60)
    p.add_argument("--connections", type=int, default=200)
    p.add_argument("--list-share", type=float, default=0.2, help="connections listing jobs")
    p.add_argument("--api-workers", type=int, default=2)
    p.add_argument("--job-steps", type=int, default=400)
    p.add_argument("--baseline", type=int, default=15, help="seconds of progress before load")
    p.add_argument(
        "--rate", type=float, default=0.0,
        help="status reads/s the clients aim at, as pollers pausing between responses "
        "(0: each connection sends its next request at once, the saturation test)",
    )  # fmt: skip
    p.add_argument("--list-rate", type=float, default=0.0, help="the same, for the list")
    p.add_argument("--pin", action="store_true", help="worker on the last core, API on the rest")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    cores = os.cpu_count() or 1
    if args.pin and cores < 2:
        sys.exit("--pin needs two cores at least")
    api_cpus, worker_cpus = f"0-{cores - 2}", str(cores - 1)

    def pinned(cmd: list[str], cpus: str) -> list[str]:
        return ["taskset", "-c", cpus, *cmd] if args.pin else cmd

    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    info = machine()
    print(f"machine: {info}", flush=True)
    api_args = [
        sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
        "--workers", str(args.api_workers), "--no-access-log", "--timeout-keep-alive", "30",
        "--log-level", "warning",
    ]  # fmt: skip
    with job_running(
        name="load", redis_url=REDIS_URL, steps=args.job_steps, env={"TORCH_THREADS": "1"},
        api_cmd=lambda port: pinned([*api_args, "--port", str(port)], api_cpus),
        worker_cmd=lambda cmd: pinned(cmd, worker_cpus),
    ) as running:  # fmt: skip
        client, job_id, tmp = running.client, running.job_id, running.tmp
        samples: list[tuple[float, float, str]] = []
        stop = threading.Event()
        sampler = threading.Thread(
            target=progress_sampler, args=(client, job_id, samples, stop), daemon=True
        )
        sampler.start()
        t0 = time.monotonic()
        time.sleep(args.baseline)
        t1 = time.monotonic()
        list_conns = max(1, round(args.connections * args.list_share))
        status_conns = args.connections - list_conns
        runs = {
            "status": (f"/v1/jobs/{job_id}", status_conns, pause(status_conns, args.rate)),
            "list": ("/v1/jobs?limit=20", list_conns, pause(list_conns, args.list_rate)),
        }
        procs = {}
        for name, (url_path, conns, pause_ms) in runs.items():
            script = tmp / f"{name}.lua"
            script.write_text(LUA % (url_path, pause_ms, running.key))
            wrk = [
                "wrk", "-t1", f"-c{conns}", f"-d{args.duration}s", "--latency",
                "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{running.port}",
            ]  # fmt: skip
            procs[name] = subprocess.Popen(pinned(wrk, api_cpus), stdout=subprocess.PIPE, text=True)
        raw = {name: proc.communicate()[0] for name, proc in procs.items()}
        results = {name: parse_wrk(text) for name, text in raw.items()}
        for name, text in raw.items():
            print(f"wrk {name}:\n{text}", flush=True)
        t2 = time.monotonic()
        stop.set()
        sampler.join()
    for name, (_, conns, pause_ms) in runs.items():
        results[name]["connections"] = conns
        results[name]["pause_ms"] = pause_ms
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    before, during = rate(samples, t0, t1), rate(samples, t1, t2)
    errors = sum(r["non_2xx"] + r["socket_errors"] for r in results.values())
    final = {
        "status_reads_per_s": results["status"]["requests_per_s"],
        "status_p50_ms": results["status"].get("p50_ms"),
        "status_p99_ms": results["status"].get("p99_ms"),
        "list_reads_per_s": results["list"]["requests_per_s"],
        "list_p50_ms": results["list"].get("p50_ms"),
        "list_p99_ms": results["list"].get("p99_ms"),
        "errors": errors,
        "job_progress_per_s_before": before,
        "job_progress_per_s_during": during,
        "connections": args.connections,
        "target_rate": {"status": args.rate, "list": args.list_rate},
        "duration_s": args.duration,
        "api_workers": args.api_workers,
        "pinned": {"api_and_wrk": api_cpus, "worker": worker_cpus} if args.pin else None,
        "wrk": results,
        "machine": info,
    }
    emit(final, args.out)


if __name__ == "__main__":
    main()
