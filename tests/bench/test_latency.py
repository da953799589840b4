"""bench/latency.py on a kept store of a tiny BERT job: the report found, the artifacts checked
by sha256, the dense baseline exported again and the three files timed per thread count."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench import latency
from tests.factories.reports import report_json
from tests.factories.tiny_bert import archive, write_tiny_bert
from worker.pipelines import export as ex
from worker.pipelines.measure import file_sizes_mb


def _put(store: Path, path: Path) -> str:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    dest = store / "sha256" / sha[:2] / sha[2:4] / sha
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    return sha


def _kept_job(tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    """A store as recipe.py --keep leaves it: ONNX artifacts and the job's report.json (plus
    the dense fine-tune's report, which has no recipe), and the dense model archive."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = write_tiny_bert(tmp_path / "dense", with_head=True)
    dense_tar = archive(model_dir, tmp_path / "model.tar.gz")
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    fp32 = ex.export_onnx(model, tok, tmp_path / "onnx" / "model.onnx", max_length=16)
    int8 = ex.quantize_onnx_int8(fp32, tmp_path / "onnx" / "model-int8.onnx")
    store = tmp_path / "keep" / "store"
    report = report_json(recipe="obert-80")  # max length 16, as exported here
    report["onnx"]["dense_fp32"]["file_size"] = file_sizes_mb(fp32)
    for kind, path in (("model_onnx", fp32), ("model_int8_onnx", int8)):
        report["artifacts"][kind] = {"filename": path.name, "sha256": _put(store, path)}
    dense_report = {"spec": {"recipe": None}, "onnx": {}, "artifacts": {}}
    for name, body in (("r.json", report), ("d.json", dense_report)):
        (tmp_path / name).write_text(json.dumps(body), encoding="utf-8")
        _put(store, tmp_path / name)
    return tmp_path / "keep", dense_tar, report


def test_retimes_the_kept_files_per_thread_count(tmp_path: Path) -> None:
    keep, dense_tar, _ = _kept_job(tmp_path)
    out = tmp_path / "results"
    argv = ["--keep", str(keep), "--dense", str(dense_tar), "--threads", "1", "2"]
    argv += ["--runs", "4", "--rounds", "2", "--out", str(out)]
    assert latency.main(argv) == 0
    (written,) = out.glob("latency-*-obert-80-keep-*.json")  # named by the kept folder too
    line = json.loads(written.read_text(encoding="utf-8"))
    assert line["recipe"] == "obert-80@2" and line["max_length"] == 16
    assert line["job_accuracy"] == {"dense_fp32": 0.875, "fp32": 0.8125, "int8": 0.75}
    assert line["in_job_speedup_b1"] == {"fp32": 1.5, "int8": 2.0}  # from the job's report
    assert [t["threads"] for t in line["by_threads"]] == [1, 2]
    for t in line["by_threads"]:
        assert t["runs_b1"] == 4 and t["rounds"] == 2
        ms = t["batch_1_ms"]
        assert set(ms) == {"dense", "fp32", "int8"} and min(ms.values()) > 0
        # the ms are rounded to 0.001 and the speedup to 0.001: it lies within their bounds
        d, i, half = ms["dense"], ms["int8"], 0.0005
        assert (d - half) / (i + half) - half <= t["speedup_b1"]["int8"]
        assert t["speedup_b1"]["int8"] <= (d + half) / (i - half) + half
        spread = t["speedup_b1_per_round"]["fp32"]
        assert spread["min"] <= spread["median"] <= spread["max"]


def test_a_tampered_artifact_is_refused(tmp_path: Path) -> None:
    keep, dense_tar, report = _kept_job(tmp_path)
    sha = report["artifacts"]["model_int8_onnx"]["sha256"]
    path = keep / "store" / "sha256" / sha[:2] / sha[2:4] / sha
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(SystemExit, match="sha256"):
        latency.main(["--keep", str(keep), "--dense", str(dense_tar), "--runs", "1"])


def test_which_job_when_the_store_holds_several(tmp_path: Path) -> None:
    keep, _, report = _kept_job(tmp_path)
    other = {**report, "spec": {"recipe": "gmp-90@2"}}
    (tmp_path / "o.json").write_text(json.dumps(other), encoding="utf-8")
    _put(keep / "store", tmp_path / "o.json")
    with pytest.raises(SystemExit, match="2 compression job reports"):
        latency.find_report(keep / "store")
    assert latency.find_report(keep / "store", "gmp-90").spec_at("recipe") == "gmp-90@2"
    assert latency.find_report(keep / "store", "obert-80@2").spec_at("recipe") == "obert-80@2"


def test_per_round_speedups() -> None:
    ms = {"dense": [10.0, 12.0, 20.0, 22.0], "int8": [2.0, 4.0, 5.0, 5.0]}
    assert latency.per_round_speedups(ms, 2) == {"int8": [round(11 / 3, 3), 4.2]}
