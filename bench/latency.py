"""Benchmark: a recipe job's ONNX files against the dense model, timed again on their own, at
one or more ONNX Runtime thread counts.

bench/recipe.py measures latency inside the job, right after training, while whatever else the
machine runs goes on (on this VM the dense model's batch-1 time moved between 17 and 30 ms in
a day). This script re-times the files of a job kept with ``recipe.py --keep DIR``: it finds
the job's report.json in DIR's store, takes the fp32 and int8 ONNX files it names (checked by
sha256), exports the dense baseline again exactly as the export stage does (the cached dense
model, the same compaction and exporter; its size is checked against the report's), and
times the three files in many rounds that alternate between them, once per ``--threads``
value. Medians over all runs, and the speedup of each file over dense per round (its spread
says how steady the machine was). One JSON line.

Usage: ``python bench/latency.py --keep DIR --threads 1 2 --out bench/results``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.reports import Report
from bench.common import CACHE, machine, result_name
from scalpel_client.download import file_sha256
from worker.pipelines import export as ex
from worker.pipelines.measure import dummy_inputs, file_sizes_mb

FILES = ("dense", "fp32", "int8")


def find_report(store: Path, recipe: str | None = None) -> Report:
    """The report.json of the kept store's compression job (not the dense fine-tune's): the
    one with ONNX artifacts and a recipe, or the one of `recipe` (a name, `name@version`)."""
    found: list[dict[str, Any]] = []
    for path in sorted(store.glob("sha256/*/*/*")):
        if path.stat().st_size > 4 * 2**20:
            continue
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(report, dict) or "onnx" not in report or "artifacts" not in report:
            continue
        ref = str(report.get("spec", {}).get("recipe") or "")
        if ref and (recipe is None or ref == recipe or ref.split("@")[0] == recipe):
            found.append(report)
    if len(found) != 1:
        raise SystemExit(f"{len(found)} compression job reports in {store} (give --recipe)")
    return Report.model_validate(found[0])


def artifact(store: Path, report: Report, kind: str) -> Path:
    """A report's artifact, checked against the sha256 the report gives it."""
    sha = report.artifacts[kind].sha256
    path = store / "sha256" / sha[:2] / sha[2:4] / sha
    if file_sha256(path) != sha:
        raise SystemExit(f"{path} does not match its sha256")
    return path


def dense_archive(given: Path | None) -> Path:
    if given is not None:
        return given
    found: list[Path] = sorted(CACHE.glob("recipe-dense-*/model.tar.gz"))
    if len(found) != 1:
        raise SystemExit(f"{len(found)} cached dense models under {CACHE} (give --dense)")
    return found[0]


def export_dense(archive: Path, folder: Path, max_length: int) -> tuple[Path, Any]:
    """The dense baseline exported as the export stage exports it, and its tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from worker.pipelines.compaction import compact_structures

    with tarfile.open(archive) as tar:
        tar.extractall(folder / "dense-model", filter="data")
    model_dir = next(p.parent for p in (folder / "dense-model").rglob("config.json"))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    small, _ = compact_structures(model)
    path = ex.export_onnx(small, tokenizer, folder / "dense.onnx", max_length=max_length)
    return path, tokenizer


def per_round_speedups(ms: dict[str, list[float]], rounds: int) -> dict[str, list[float]]:
    """Speedup over dense in each round: the median of the round's dense runs over the
    median of the file's runs in that round."""
    out: dict[str, list[float]] = {}
    for name in ms:
        if name == "dense":
            continue
        per = len(ms[name]) // rounds
        out[name] = [
            round(
                statistics.median(ms["dense"][r * per : (r + 1) * per])
                / statistics.median(ms[name][r * per : (r + 1) * per]),
                3,
            )
            for r in range(rounds)
        ]
    return out


def time_files(
    files: dict[str, Path], tokenizer: Any, max_length: int, threads: int, runs: int, rounds: int
) -> dict[str, Any]:
    """Batch-1 latency of every file at `threads` intra-op threads, in alternating rounds."""
    sessions = {name: ex.open_session(path, threads=threads) for name, path in files.items()}
    rows = dummy_inputs(tokenizer, 1, max_length)
    per = max(1, -(-runs // rounds))
    turns = {name: ex.Turn(s, ex.feed_of(s, rows), per, 3) for name, s in sessions.items()}
    ms: dict[str, list[float]] = ex.alternating_runs(turns, rounds)
    med = {name: statistics.median(v) for name, v in ms.items()}
    rounds_x = per_round_speedups(ms, rounds)
    return {
        "threads": threads,
        "runs_b1": per * rounds,
        "rounds": rounds,
        "batch_1_ms": {name: round(v, 3) for name, v in med.items()},
        "speedup_b1": {n: round(med["dense"] / med[n], 3) for n in med if n != "dense"},
        "speedup_b1_per_round": {
            n: {"min": min(v), "median": statistics.median(v), "max": max(v)}
            for n, v in rounds_x.items()
        },
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--keep", type=Path, required=True, help="the folder recipe.py --keep wrote")
    p.add_argument("--recipe", default=None, help="which job, when the store holds several")
    p.add_argument("--dense", type=Path, default=None, help="dense model.tar.gz (default: cache)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    p.add_argument("--runs", type=int, default=200, help="batch-1 runs per file and thread count")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--out", type=Path, default=None, help="also write the line to a file here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    store = args.keep / "store"
    report = find_report(store, args.recipe)
    onnx = report.onnx
    if onnx is None or onnx.dense_fp32 is None or report.max_length is None:
        raise SystemExit("the job's report has no ONNX dense baseline or max length")
    max_length = report.max_length
    with tempfile.TemporaryDirectory(prefix="scalpel-bench-latency-") as tmp:
        dense, tokenizer = export_dense(dense_archive(args.dense), Path(tmp), max_length)
        expected = onnx.dense_fp32.file_size.raw_mb
        if abs(file_sizes_mb(dense)["raw_mb"] - expected) > 0.01:
            raise SystemExit(
                f"the dense model re-exported is {file_sizes_mb(dense)['raw_mb']} MB, the "
                f"job's {expected} MB: the job was exported by other code (time it with that)"
            )
        files = {
            "dense": dense,
            "fp32": artifact(store, report, "model_onnx"),
            "int8": artifact(store, report, "model_int8_onnx"),
        }
        by_threads = [
            time_files(files, tokenizer, max_length, t, args.runs, args.rounds)
            for t in args.threads
        ]
    blocks = {"dense_fp32": onnx.dense_fp32, "fp32": onnx.fp32, "int8": onnx.int8}
    line = {
        "recipe": report.spec_at("recipe"),
        "job_accuracy": {k: b.accuracy for k, b in blocks.items()},
        "in_job_speedup_b1": {
            k: speedup.batch_1 if (speedup := blocks[k].speedup_vs_dense) else None
            for k in FILES[1:]
        },
        "max_length": max_length,
        "by_threads": by_threads,
        "machine": machine(),
    }
    text = json.dumps(line)
    print(text, flush=True)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        name = str(line["recipe"]).split("@")[0]
        # the kept folder's name too: two jobs re-timed in one minute write two files
        kept = re.sub(r"[^A-Za-z0-9._-]+", "_", args.keep.resolve().name)
        (args.out / result_name("latency", name, kept)).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
