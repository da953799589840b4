"""`make demo`: a real compression job through the HTTP API, end to end.

Starts `scripts/serve.py` (API + worker) on the configured database and broker (SQLite and a
filesystem broker by default; REDIS_URL / DATABASE_URL switch it), creates an API key for the
tenant `demo` (`python -m app create-api-key --tenant demo`), submits a job on the built-in
MiniLM-L6 and the `tweets` data set, shows progress, downloads the artifacts, verifies their
digests, prints the report and stops what it started.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from worker.pipelines.report_md import metric_format, primary_metric

ROOT = Path(__file__).resolve().parent.parent

DEMO_SPEC: dict[str, Any] = {
    "model": "minilm-l6",
    "dataset": {
        "name": "tweets",
        "max_train_examples": int(os.environ.get("DEMO_TRAIN_EXAMPLES", "2000")),
        "max_eval_examples": int(os.environ.get("DEMO_EVAL_EXAMPLES", "600")),
        "max_length": 64,
    },
    "pruning": {"method": "magnitude", "sparsity": 0.5, "schedule": {"kind": "oneshot"}},
    "quantization": {"method": "dynamic_int8"},
    "training": {"epochs": 1, "recovery_epochs": 1, "batch_size": 16, "learning_rate": 5e-5},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(client: httpx.Client, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited early with {proc.returncode}")
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit("the service did not become ready in time")


def create_api_key(env: dict[str, str], tenant: str = "demo") -> str:
    """A new key for the tenant, made the documented way; the tenant is created if missing."""
    proc = subprocess.run(
        [sys.executable, "-m", "app", "create-api-key", "--tenant", tenant], cwd=ROOT, env=env,
        capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"create-api-key failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def bar(progress: float, stage: str | None, status: str) -> str:
    width = 30
    done = round(progress * width)
    return (
        f"\r[{'#' * done}{'.' * (width - done)}] {progress * 100:5.1f}% {status:<9} {stage or ''}"
    )


def watch(client: httpx.Client, job_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        sys.stdout.write(bar(job["progress"], job["stage"], job["status"]).ljust(72))
        sys.stdout.flush()
        if job["status"] in ("succeeded", "failed", "canceled"):
            sys.stdout.write("\n")
            return job
        time.sleep(1.0)
    raise SystemExit(f"\njob {job_id} did not finish within {timeout_s:.0f} s")


def download(client: httpx.Client, url: str, dest: Path) -> str:
    h = hashlib.sha256()
    with client.stream("GET", url) as r, dest.open("wb") as out:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            h.update(chunk)
            out.write(chunk)
        want = r.headers["x-checksum-sha256"]
        repr_digest = r.headers.get("repr-digest", "")
    got = h.hexdigest()
    if got != want:
        raise SystemExit(f"digest mismatch for {dest.name}: got {got}, server says {want}")
    b64 = base64.b64encode(bytes.fromhex(got)).decode()
    if repr_digest and repr_digest != f"sha-256=:{b64}:":
        raise SystemExit(f"Repr-Digest mismatch for {dest.name}")
    return got


def print_report(report: dict[str, Any]) -> None:
    dense, comp = report.get("dense", {}), report.get("compressed", {})
    print("\n== report ==")
    print(json.dumps({k: report[k] for k in ("dense", "compressed") if k in report}, indent=2))
    if dense and comp:
        before, after = primary_metric(dense), primary_metric(comp)
        name = metric_format(after.name).heading
        print(
            f"\n{name} dense {before.formatted} -> compressed {after.formatted}; "
            f"encoder sparsity measured {comp.get('sparsity', {}).get('overall')}"
        )


def main() -> int:
    port = int(os.environ.get("PORT") or free_port())
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1")
    out_dir = ROOT / "var" / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    # The API's and worker's logs (JSON lines) go to a file, so the terminal shows the job.
    log_path = out_dir / "serve.log"
    log = log_path.open("wb")
    print(f"API and worker logs: {log_path}")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "serve.py")], cwd=ROOT, env=env,
        start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_ready(client, proc, timeout_s=180)  # serve.py has migrated the database
            client.headers["Authorization"] = f"Bearer {create_api_key(env)}"
            print("created an API key for tenant 'demo'")
            r = client.post("/v1/jobs", json=DEMO_SPEC)
            if r.status_code != 202:
                raise SystemExit(f"submit failed: {r.status_code} {r.text}")
            job_id = r.json()["id"]
            print(f"submitted job {job_id} ({r.headers['location']})")
            job = watch(client, job_id, timeout_s=float(os.environ.get("DEMO_TIMEOUT_S", "1800")))
            if job["status"] != "succeeded":
                raise SystemExit(f"job ended {job['status']}: {job.get('error')}")
            arts = client.get(f"/v1/jobs/{job_id}/artifacts").raise_for_status().json()
            report: dict[str, Any] = {}
            for art in arts["items"]:
                dest = out_dir / art["filename"]
                digest = download(client, f"/v1/artifacts/{art['id']}", dest)
                print(f"downloaded {dest} ({art['size_bytes']} bytes, sha256 {digest} verified)")
                if art["kind"] == "report":
                    report = json.loads(dest.read_text())
            print_report(report)
        return 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


if __name__ == "__main__":
    sys.exit(main())
