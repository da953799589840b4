"""`make demo`: a real compression job through the HTTP API, end to end.

Starts `scripts/serve.py` (API + worker) on the configured database and broker (SQLite and a
filesystem broker by default; REDIS_URL / DATABASE_URL switch it), creates an API key for the
tenant `demo` (`python -m app create-api-key --tenant demo`), then with the Python client
(`scalpel_client`) submits the built-in recipe `structured-2x-int8` on MiniLM-L6 and the
`tweets` data set, trimmed to a few minutes of CPU (structured second-order pruning of heads and
FFN neurons to a measured speedup, distilled from the dense teacher, then int8 QAT), watches it,
downloads the artifacts (their sha-256 verified), prints a dense-vs-compressed table read from
report.json through the typed report (`app.reports.Report`), and stops what it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.reports import Latency, Report
from app.settings import Settings
from scalpel_client import Artifact, Job, ScalpelClient
from worker.pipelines.report_metrics import Variant, primary_metric, variants

ROOT = Path(__file__).resolve().parent.parent
RECIPE = "structured-2x-int8"

# The recipe's fields are deep-merged under these: a slice of the data set, short sequences,
# and a training budget of minutes on 2 cores (the recipe's own is epochs of the whole set):
# 90 dense fine-tuning steps, 2 structured steps with 20 distilled recovery steps each, 20 QAT
# steps, at twice the recipe's learning rate for so few steps.
DEMO_SPEC: dict[str, Any] = {
    "recipe": RECIPE,
    "model": "minilm-l6",
    "dataset": {
        "name": "tweets",
        "max_train_examples": int(os.environ.get("DEMO_TRAIN_EXAMPLES", "2000")),
        "max_eval_examples": int(os.environ.get("DEMO_EVAL_EXAMPLES", "400")),
        "max_length": 64,
    },
    "pruning": {"structured": {"steps": 2, "calibration_batches": 8}},
    "quantization": {"qat_steps": 20},
    "training": {"max_steps": 90, "recovery_max_steps": 40, "batch_size": 16,
                 "learning_rate": 1e-4},
}  # fmt: skip

# What each artifact kind is, for the list of downloaded files.
ARTIFACT_NOTES: dict[str, str] = {
    "model_int8_onnx": "int8 ONNX  <- recommended: ONNX Runtime alone runs it",
    "model_onnx": "fp32 ONNX",
    "model": "PyTorch fp32, a Hugging Face folder (from_pretrained)",
    "model_int8": "PyTorch int8: needs Scalpel's code to load (see its quantization.json)",
    "report": "the full report: every measurement, as JSON",
    "report_md": "the report, for people (Markdown, with the plots)",
}
RECOMMENDED = "model_int8_onnx"


def budget_text(spec: dict[str, Any] = DEMO_SPEC) -> str:
    """What the demo's spec changes of the recipe, in a sentence."""
    d, t = spec["dataset"], spec["training"]
    steps = spec["pruning"]["structured"]["steps"]
    return (
        f"trimmed for the demo: {d['max_train_examples']} training and {d['max_eval_examples']} "
        f"dev examples of {d['max_length']} tokens; {t['max_steps']} dense fine-tuning steps, "
        f"{steps} structured steps with {t['recovery_max_steps']} recovery steps in all, "
        f"{spec['quantization']['qat_steps']} QAT steps"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url, timeout=10) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the service exited early with {proc.returncode}")
            try:
                if http.get("/readyz").status_code == 200:
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


def bar(progress: float, stage: str | None, status: str, elapsed_s: float) -> str:
    width = 30
    done = round(progress * width)
    minutes, seconds = divmod(int(elapsed_s), 60)
    return (
        f"\r[{'#' * done}{'.' * (width - done)}] {progress * 100:5.1f}% {minutes:2d}:{seconds:02d} "
        f"{status:<9} {stage or ''}"
    )


def watch(client: ScalpelClient, job_id: str, timeout_s: float) -> Job:
    start = time.monotonic()

    def show(job: Job) -> None:
        line = bar(job["progress"], job["stage"], job["status"], time.monotonic() - start)
        sys.stdout.write(line.ljust(78))
        sys.stdout.flush()

    job = client.wait(job_id, on_update=show, poll_interval=1.0, timeout=timeout_s)
    sys.stdout.write("\n")
    return job


# -- the summary ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One measured model of the summary table."""

    title: str
    runtime: str
    metric: str  # the primary metric, formatted
    sparsity: float | None
    parameters_kept: int
    size_mib: float
    latency: Latency
    speedup_b1: float | None


def _kept(report: Report, v: Variant) -> int:
    """Parameters left nonzero: the compressed models' pruned weights are zeros (structured
    pruning's heads and neurons too, in the PyTorch model; the ONNX graphs drop them)."""
    zeros = report.compressed.sparsity.zeros if v.name != "dense" else None
    return v.parameters - (zeros or 0)


def summary_columns(report: Report) -> list[Column]:
    """Dense vs compressed as ONNX Runtime runs them (the PyTorch models where the report has
    no ONNX section); speedups at batch 1 against the dense model in the same runtime."""
    found = variants(report)
    onnx = [v for v in found if v.runtime.startswith("ONNX")]
    chosen = onnx or found
    dense = next((v for v in chosen if v.name == "dense"), None)
    cols = []
    for v in chosen:
        speedup = None
        if dense is not None and v.latency.batch_1_ms > 0:
            speedup = dense.latency.batch_1_ms / v.latency.batch_1_ms
        title = v.name + (" *" if v.name == "compressed int8" and onnx else "")
        cols.append(Column(
            title, v.runtime.removeprefix("ONNX Runtime ").removeprefix("PyTorch "),
            primary_metric(v.scores).formatted, v.sparsity, _kept(report, v),
            v.file_size.raw_mb, v.latency, speedup,
        ))  # fmt: skip
    return cols


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f}M"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def format_summary(report: Report) -> str:
    """The dense-vs-compressed table: primary metric, sparsity, parameters kept, size,
    latency at batch 1 and speedup, then the CPU it was measured on."""
    cols = summary_columns(report)
    metric = primary_metric(report.compressed).label
    where = "ONNX Runtime" if report.onnx is not None else "PyTorch"
    rows: list[tuple[str, list[str]]] = [
        ("", [c.title for c in cols]),
        ("runtime", [c.runtime for c in cols]),
        (f"{metric} (dev)", [c.metric for c in cols]),
        ("encoder sparsity", [_pct(c.sparsity) for c in cols]),
        ("parameters kept", [_millions(c.parameters_kept) for c in cols]),
        ("size on disk (MiB)", [f"{c.size_mib:.1f}" for c in cols]),
        (f"latency, {where} b1 (ms)", [f"{c.latency.batch_1_ms:.2f}" for c in cols]),
        ("speedup at batch 1", ["n/a" if c.speedup_b1 is None else f"{c.speedup_b1:.2f}x"
                                for c in cols]),
    ]  # fmt: skip
    label_w = max(len(label) for label, _ in rows)
    widths = [max(len(cells[i]) for _, cells in rows) for i in range(len(cols))]
    lines = [
        "  ".join([label.ljust(label_w), *(c.rjust(w) for c, w in zip(cells, widths, strict=True))])
        for label, cells in rows
    ]
    if any(c.title.endswith("*") for c in cols):
        name = report.onnx.int8.file if report.onnx is not None else None
        lines.append(f"* the recommended artifact ({name or 'model-int8.onnx'})")
    lines.append(measured_on(report))
    return "\n".join(lines)


def title(report: Report) -> str:
    what = report.spec_at("recipe") or report.spec_at("pruning", "method")
    data = report.dataset.name if report.dataset is not None else report.spec_at("dataset", "name")
    return f"dense vs compressed: {what} on {report.spec_at('model')}, {data}"


def measured_on(report: Report) -> str:
    length = report.max_length or report.spec_at("dataset", "max_length")
    cpu = report.cpu
    if cpu is None:
        return f"measured on an unrecorded CPU, sequence length {length}"
    return (
        f"measured on {cpu.model} ({cpu.cores} cores, {cpu.threads} thread"
        f"{'' if cpu.threads == 1 else 's'}), sequence length {length}"
    )


def shown_path(path: Path) -> str:
    """path relative to the repository where it is inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def size_text(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def artifact_note(kind: str) -> str:
    if kind.startswith("plot_"):
        return "plot: " + kind.removeprefix("plot_").replace("_", " ")
    return ARTIFACT_NOTES.get(kind, kind.replace("_", " "))


def format_files(files: list[tuple[Artifact, Path]]) -> str:
    """The downloaded files (their names, under a heading with their folder where they share
    one), the recommended one first, each with its size and what it is."""
    ordered = sorted(files, key=lambda f: (f[0]["kind"] != RECOMMENDED, f[0]["filename"]))
    folders = {p.parent for _, p in ordered}
    shared = folders.pop() if len(folders) == 1 else None
    heading = f"files in {shown_path(shared)}/" if shared is not None else "files"
    paths = [p.name if shared is not None else shown_path(p) for _, p in ordered]
    sizes = [size_text(art["size_bytes"]) for art, _ in ordered]
    path_w, size_w = max(map(len, paths), default=0), max(map(len, sizes), default=0)
    return "\n".join([f"== {heading} ==", *(
        f"  {path.ljust(path_w)}  {size.rjust(size_w)}  {artifact_note(art['kind'])}"
        for (art, _), path, size in zip(ordered, paths, sizes, strict=True)
    )])  # fmt: skip


def dashboard_url(job_id: str, port: int) -> str:
    return f"http://127.0.0.1:{port}/dashboard/#/jobs/{job_id}"


# -- the run -------------------------------------------------------------------------------


def run_job(
    client: ScalpelClient, out_dir: Path, timeout_s: float
) -> tuple[Job, list[tuple[Artifact, Path]]]:
    """Submit the demo's job, watch it, download its artifacts into out_dir/<job id>/."""
    recipe = client.get_recipe(RECIPE)
    print(f"recipe {recipe['ref']}: {recipe['description']}")
    print(budget_text())
    job = client.submit_job(DEMO_SPEC)
    print(f"submitted job {job['id']} ({job['links']['self']})")
    try:
        job = watch(client, job["id"], timeout_s)
    except KeyboardInterrupt:  # not left to resume on the next `make serve`
        client.cancel_job(job["id"])
        raise SystemExit(f"\ninterrupted: canceled job {job['id']}") from None
    if job["status"] != "succeeded":
        raise SystemExit(f"job ended {job['status']}: {job.get('error')}")
    job_dir = out_dir / job["id"]
    job_dir.mkdir(parents=True, exist_ok=True)  # a folder: each file keeps its name
    files = []
    for art in client.list_artifacts(job["id"]):
        files.append((art, client.download(art, job_dir)))  # sha-256 checked, or raises
    print(f"downloaded {len(files)} artifacts to {shown_path(job_dir)}/, sha-256 verified")
    return job, files


def print_results(job: Job, files: list[tuple[Artifact, Path]], key_file: Path) -> None:
    by_kind = {art["kind"]: path for art, path in files}
    report_path = by_kind.get("report")
    print()
    if report_path is None:
        print("(the job has no report.json)")
    else:
        report = Report.model_validate(json.loads(report_path.read_text(encoding="utf-8")))
        print(f"== {title(report)} ==")
        print(format_summary(report))
    print()
    print(format_files(files))
    if report_path is not None:
        print(f"full report: {shown_path(report_path)}")
    print("\n== dashboard ==")
    print(dashboard_url(job["id"], Settings().port))
    print(
        "`make serve` serves it once the demo has stopped (the job stays in the registry, "
        "SQLite under var/ by default);\n"
        f"the dashboard asks for an API key: the demo's is in {shown_path(key_file)}"
    )


def main() -> int:
    port = int(os.environ.get("PORT") or free_port())
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1")
    # One torch (and ONNX Runtime) thread unless told otherwise: on a machine doing other work,
    # two threads on two cores wait on each other (a training step ~3x slower than one thread),
    # and the latencies are timed single-threaded, as a batch-1 server runs.
    env.setdefault("TORCH_THREADS", "1")
    url = f"http://127.0.0.1:{port}"
    out_dir = ROOT / "var" / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    # The API's and worker's logs (JSON lines) go to a file, so the terminal shows the job.
    log_path = out_dir / "serve.log"
    log = log_path.open("wb")
    print(f"API and worker logs: {shown_path(log_path)}")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "serve.py")], cwd=ROOT, env=env,
        start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_ready(url, proc, timeout_s=180)  # serve.py has migrated the database
        api_key = create_api_key(env)
        key_file = out_dir / "api-key"
        key_file.unlink(missing_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(api_key + "\n")
        print(f"created an API key for tenant 'demo' ({shown_path(key_file)})")
        timeout_s = float(os.environ.get("DEMO_TIMEOUT_S", "1800"))
        with ScalpelClient(url, api_key, timeout=60) as client:
            job, files = run_job(client, out_dir, timeout_s)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    print_results(job, files, key_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
