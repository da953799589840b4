"""Screenshots of the dashboard for the README: the job list and a succeeded job's page, at
1280x800, as PNGs in docs/screenshots/.

Starts the browser tests' API server (SQLite in a temp dir, no worker), seeds a few jobs the
way a worker leaves them (a succeeded job with its report, plots drawn by the worker's own
plotting code from that report, per-step metrics and artifacts; a running, a queued, a failed
and a canceled one), and drives the browser tests' headless Chromium (Debian's: `make
browser`). The numbers are illustrative, not a measured run (see the README's results).

    .venv/bin/python scripts/dashboard_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
SPEC = {"model": "minilm-l6", "dataset": {"name": "tweets"}}
STEPS = [
    {"step": s, "sparsity": sp, "dev_accuracy": acc}
    for s, sp, acc in ((0, 0.2, 0.9274), (150, 0.45, 0.9217), (300, 0.62, 0.9128),
                       (450, 0.73, 0.9014), (600, 0.78, 0.8945), (750, 0.8, 0.8911))
]  # fmt: skip
STAGE_SECONDS = {"load": 4.82, "finetune_dense": 412.6, "prune": 1.37, "recover": 905.25,
                 "export": 38.9, "package": 6.4}  # fmt: skip


def _block(acc: float, mb: float, b1: float, b32: float) -> dict[str, Any]:
    return {"primary_metric": {"name": "accuracy", "value": acc}, "accuracy": acc,
            "macro_f1": acc - 0.004, "file_size": {"raw_mb": mb, "gzip_mb": mb * 0.42},
            "latency_cpu_ms": {"batch_1_ms": b1, "batch_32_ms": b32}}  # fmt: skip


def showcase_report(job_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    layers = {str(i): 0.8 + (i - 2.5) * 0.004 for i in range(6)}
    return {
        "schema_version": 1, "job_id": job_id, "task": "sequence_classification", "spec": spec,
        "dense": {**_block(0.9345, 86.7, 12.4, 182.0), "parameters": 22_713_216},
        "compressed": {**_block(0.8911, 86.7, 7.9, 121.5), "parameters": 22_713_216,
                       "sparsity": {"overall": 0.8, "per_encoder_layer": layers}},
        "int8": _block(0.8872, 24.1, 5.2, 80.3),
        "pruning": {"method": "magnitude", "target_sparsity": 0.8, "structure": "unstructured",
                    "scope": "global", "schedule": "gradual",
                    "applied": [{"step": s["step"], "sparsity": s["sparsity"],
                                 "primary_metric": {"name": "accuracy",
                                                    "value": s["dev_accuracy"]}}
                                for s in STEPS]},
        "stage_seconds": STAGE_SECONDS, "total_seconds": round(sum(STAGE_SECONDS.values()), 3),
    }  # fmt: skip


def seed_showcase(server: Any, tmp: Path) -> str:
    """The jobs of the screenshots; returns the succeeded one's id."""
    from app.reports import Report
    from tests.app.dashboard.seed import add_artifact, add_steps, submit
    from worker.pipelines.report_files import write_report_files

    submit(server, name="tweets GMP 80%, int8", labels={"team": "search"},
           pruning={"method": "magnitude", "sparsity": 0.8},
           quantization={"method": "dynamic_int8"})  # fmt: skip
    running = submit(server, name="tweets GMP 90%", labels={"experiment": "gmp-90"},
                     pruning={"method": "magnitude", "sparsity": 0.9})  # fmt: skip
    now = datetime.now(UTC)

    def ago(seconds: float) -> datetime:
        return now - timedelta(seconds=seconds)

    server.finish_job(running, "running", stage="recover", progress=0.62, created_at=ago(760),
                      started_at=ago(754))  # fmt: skip
    add_steps(server, running, STEPS[:4])
    failed = submit(server, name="support tickets, 95%", labels={"team": "support"})
    server.finish_job(
        failed, "failed", stage="load", progress=0.05, error_code="dataset_invalid",
        error_message="label column 'label' has 1 class; need at least 2",
        created_at=ago(1310), started_at=ago(1300), finished_at=ago(1296),
    )  # fmt: skip
    canceled = submit(server, name="gmp-95 trial")
    server.finish_job(
        canceled, "canceled", stage="recover", progress=0.4, created_at=ago(3010),
        started_at=ago(3000), finished_at=ago(2400),
    )  # fmt: skip
    done = submit(server, name="tweets GMP 80%", labels={"team": "search", "recipe": "gmp-80"},
                  pruning={"method": "magnitude", "sparsity": 0.8})  # fmt: skip
    job = server_job(server, done)
    report = Report.model_validate(showcase_report(done, job["spec"]))
    summary = {"task": report.task, "primary_metric": {"name": "accuracy", "value": 0.8911},
               "dense_primary_metric": {"name": "accuracy", "value": 0.9345},
               "accuracy": 0.8911, "dense_accuracy": 0.9345, "int8_accuracy": 0.8872,
               "sparsity": 0.8, "model_size_mb": 86.7, "latency_b1_ms": 7.9,
               "dense_latency_b1_ms": 12.4, "onnx_int8_latency_b1_ms": 3.4,
               "onnx_int8_speedup_b1": 3.65, "stage_seconds": STAGE_SECONDS,
               "total_seconds": report.total_seconds}  # fmt: skip
    server.finish_job(done, "succeeded", stage="package", progress=1.0, metrics=summary,
                      created_at=ago((report.total_seconds or 0) + 3),
                      started_at=ago(report.total_seconds or 0), finished_at=now)  # fmt: skip
    add_steps(server, done, STEPS)
    blob = b"\0" * 200_000  # stands in for the archives and ONNX files
    for kind, name in (
        ("model", "model.tar.gz"),
        ("model_int8", "model-int8.tar.gz"),
        ("model_onnx", "model.onnx"),
        ("model_int8_onnx", "model-int8.onnx"),
    ):
        add_artifact(server, done, blob, kind, name, "application/octet-stream")
    for kind, path, media in write_report_files(report, tmp / "report"):
        add_artifact(server, done, path.read_bytes(), kind, path.name, media)
    text = json.dumps(report.model_dump(mode="json")).encode()
    add_artifact(server, done, text, "report", "report.json", "application/json")
    return done


def server_job(server: Any, job_id: str) -> dict[str, Any]:
    import httpx

    from tests.app.dashboard.seed import auth

    r = httpx.get(f"{server.url}/v1/jobs/{job_id}", headers=auth(server), timeout=10)
    r.raise_for_status()
    return dict(r.json())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # the browser tests' server, seed and Chromium
    from playwright.sync_api import sync_playwright

    from tests.app.dashboard.chromium import VIEWPORT, NoChromium, launch, login
    from tests.client.server import running_server

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as server:
        done = seed_showcase(server, Path(tmp))
        with sync_playwright() as pw:
            try:
                browser = launch(pw)
            except NoChromium as why:
                print(why, file=sys.stderr)
                return 1
            page = browser.new_page(viewport=VIEWPORT)
            login(page, server.url, server.api_key)
            page.wait_for_selector(f'tr[data-job-id="{done}"] .job-metric[data-metric]')
            page.screenshot(path=str(args.out / "jobs.png"))
            page.goto(f"{server.url}/dashboard/#/jobs/{done}")
            page.wait_for_selector("#steps svg circle")
            page.wait_for_function(
                "() => [...document.querySelectorAll('#plots img')]"
                ".every((i) => i.complete && i.naturalWidth > 0)"
                " && document.querySelectorAll('#plots img').length > 0"
            )
            page.screenshot(path=str(args.out / "job.png"))
            browser.close()
    for name in ("jobs.png", "job.png"):
        path = args.out / name
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
              f"{path.stat().st_size // 1024} KiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
