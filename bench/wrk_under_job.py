"""Benchmark: a bounded wrk run against a valid key's status read while a job runs (issue 14).

Starts the production parts on loopback: PostgreSQL (a fresh database), Redis, the API as
`python -m app serve` (one process, the uvicorn options and admission it ships with), one
Celery worker. Uploads a tiny BERT, submits a real compression job on it (magnitude pruning
with training on a `tweets` subset, enough steps to outlast the load), waits until it runs,
then `wrk -c 100 -t 2 -d 45s --latency` reads that job's status (`GET /v1/jobs/{id}`, the key
set by a Lua script). It records requests/s, latency percentiles, every kind of error wrk
counts (connect, read, write, timeout, non-2xx) and whether the job kept running, and prints
one JSON line (also written with --out).

Usage: ``python bench/wrk_under_job.py [--connections 100] [--threads 2] [--duration 45]
[--timeout 2] [--out bench/results/NAME.json]``; needs ``wrk`` on PATH.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_load import LUA, emit, job_running, parse_wrk
from bench.common import machine

REDIS_URL = "redis://127.0.0.1:6379/7"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--duration", type=int, default=45)
    p.add_argument("--timeout", type=int, default=2, help="wrk's per-request timeout, seconds")
    p.add_argument("--job-steps", type=int, default=600)
    p.add_argument(
        "--worker-nice", type=int, default=10,
        help="the worker's niceness: in production it runs on other machines; here it shares "
        "two cores with the API, wrk and PostgreSQL and yields to them (0: no)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    info = machine()
    print(f"machine: {info}", flush=True)
    with job_running(
        name="wrk", redis_url=REDIS_URL, steps=args.job_steps,
        env={"LOG_LEVEL": "WARNING", "TORCH_THREADS": "1"},
        api_cmd=lambda _port: [sys.executable, "-m", "app", "serve"],
        worker_cmd=lambda cmd: ["nice", "-n", str(args.worker_nice), *cmd],
    ) as running:  # fmt: skip
        before = running.job
        script = running.tmp / "status.lua"
        script.write_text(LUA % (f"/v1/jobs/{running.job_id}", 0, running.key))
        wrk = [
            "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
            "--latency", "--timeout", f"{args.timeout}s", "-s", str(script),
            f"http://127.0.0.1:{running.port}",
        ]  # fmt: skip
        raw = subprocess.run(wrk, capture_output=True, text=True, check=True).stdout
        print(raw, flush=True)
        after = running.client.get(f"/v1/jobs/{running.job_id}").json()
        api_log = (running.tmp / "api.log").read_text()
    result = {
        "bench": "wrk_under_job",
        "target": "GET /v1/jobs/{id} (a valid key's status read)",
        "connections": args.connections, "threads": args.threads,
        "duration_s": args.duration, "wrk_timeout_s": args.timeout,
        **parse_wrk(raw),
        "job": {"status_before": before["status"], "status_after": after["status"],
                "progress_before": before["progress"], "progress_after": after["progress"],
                "stage_after": after.get("stage")},
        "api_warnings": len([ln for ln in api_log.splitlines() if "WARNING" in ln]),
        "server": "python -m app serve (one uvicorn process)",
        "worker_nice": args.worker_nice,
        "machine": info,
    }  # fmt: skip
    emit(result, args.out)


if __name__ == "__main__":
    main()
