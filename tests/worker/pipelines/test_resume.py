"""Checkpoints after each stage and pruning step, and resuming a redelivered job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.worker.pipelines.test_compress import ctx_for, make_env, spec
from worker.pipelines import compress, resume
from worker.pipelines import pruning as pr
from worker.pipelines.checkpoint import Checkpoints
from worker.pipelines.progress import MemoryReporter


class Boom(RuntimeError):
    pass


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items() if k not in ("per_class",)}
    return type(value).__name__


def _report(env: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(env["artifacts"]["report"][0].read_text())
    return data


def _counting(monkeypatch: pytest.MonkeyPatch, name: str, fail_first: bool) -> list[int]:
    calls: list[int] = []
    original = getattr(compress, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if fail_first and len(calls) == 1:
            raise Boom(f"worker died in {name}")
        return original(*args, **kwargs)

    monkeypatch.setattr(compress, name, wrapper)
    return calls


def test_checkpoint_pointer_is_atomic_and_keeps_latest(tmp_path: Path) -> None:
    ck = Checkpoints(tmp_path / "ck", "d1")
    ck.save("stage", {"stage": "dense"}, {"model": {"w": torch.ones(2)}})
    ck.save("stage", {"stage": "compress"}, {"model": {"w": torch.zeros(2)}})
    latest = ck.latest("stage")
    assert latest is not None and latest.meta["stage"] == "compress"
    assert torch.equal(latest.tensors("model")["w"], torch.zeros(2))
    assert [p.name for p in (tmp_path / "ck").glob("stage-*")] == [latest.folder.name]
    assert Checkpoints(tmp_path / "ck", "other-spec").latest("stage") is None


def test_interrupted_job_resumes_after_last_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(tmp_path)
    s = spec(
        env["model_id"],
        pruning={"method": "magnitude", "sparsity": 0.5},
        quantization={"method": "qat_int8", "qat_steps": 2},
    )
    dense_calls = _counting(monkeypatch, "stage_dense", fail_first=False)
    compress_calls = _counting(monkeypatch, "stage_compress", fail_first=False)
    qat_calls = _counting(monkeypatch, "stage_qat_int8", fail_first=True)
    with pytest.raises(Boom):
        run_pipeline_once(env, tmp_path)(s)
    ckdir = env["settings"].work_dir / "t" / "checkpoints"
    assert (ckdir / "stage.json").exists()
    rep = MemoryReporter()
    summary = compress.run_pipeline(s, ctx_for(env, tmp_path, rep))
    assert (dense_calls, compress_calls, qat_calls) == ([1], [1], [1, 1])
    assert "finetune_dense" not in rep.stages and "recover" not in rep.stages
    assert "qat" in rep.stages and "prune" not in rep.stages
    resumed = _report(env)
    assert resumed["resumed_from"]["stage"] == "compress"
    assert resumed["resumed_from"]["completed"] == ["dense", "compress"]
    assert summary["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert not ckdir.exists()  # removed after success
    # An uninterrupted run of the same spec (another job) gives a report of the same shape.
    env2 = make_env(tmp_path / "fresh")
    s2 = s.model_copy(update={"model": str(env2["model_id"])})
    compress.run_pipeline(s2, ctx_for(env2, tmp_path / "fresh", MemoryReporter()))
    fresh = _report(env2)
    assert fresh["resumed_from"] is None
    resumed.pop("resumed_from"), fresh.pop("resumed_from")
    assert _shape(resumed) == _shape(fresh)
    assert resumed["pruning"]["applied"] == fresh["pruning"]["applied"]


def run_pipeline_once(env: dict[str, Any], tmp_path: Path) -> Any:
    def go(s: Any) -> Any:
        return compress.run_pipeline(s, ctx_for(env, tmp_path, MemoryReporter()))

    return go


def test_gradual_run_resumes_after_pruning_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(tmp_path)
    s = spec(
        env["model_id"],
        pruning={
            "method": "magnitude",
            "sparsity": 0.6,
            "schedule": {"kind": "gradual", "steps": 6, "pruning_steps": 3},
        },
    )
    saved_masks: list[dict[str, torch.Tensor]] = []
    original_save = resume.save_prune_step

    def save_then_die(state: Any, ctx: Any, progress: Any) -> None:
        original_save(state, ctx, progress)
        saved_masks.append({k: v.clone() for k, v in state.masks.masks.items()})
        if len(saved_masks) == 2:  # the worker dies right after pruning step 2
            raise Boom("worker died")

    monkeypatch.setattr(resume, "save_prune_step", save_then_die)
    prunes: list[float] = []
    original_prune = pr.prune_once

    def counting_prune(*args: Any, **kwargs: Any) -> None:
        prunes.append(args[2])
        original_prune(*args, **kwargs)

    monkeypatch.setattr(pr, "prune_once", counting_prune)
    with pytest.raises(Boom):
        run_pipeline_once(env, tmp_path)(s)
    assert len(prunes) == 2
    restored: list[dict[str, torch.Tensor]] = []
    original_restore = resume.restore_prune_step

    def capture(state: Any, ctx: Any, cb: Any) -> Any:
        progress = original_restore(state, ctx, cb)
        restored.append({k: v.clone() for k, v in state.masks.masks.items()})
        return progress

    monkeypatch.setattr(resume, "restore_prune_step", capture)
    summary = run_pipeline_once(env, tmp_path)(s)
    assert len(prunes) == 3  # only pruning step 3 ran again
    assert restored and set(restored[0]) == set(saved_masks[1])
    for name, mask in saved_masks[1].items():
        assert torch.equal(restored[0][name], mask)
    report = _report(env)
    assert report["resumed_from"]["prune_step"] == 2
    assert report["resumed_from"]["train_step"] == 4
    assert [p["step"] for p in report["pruning"]["applied"]] == [2, 4, 6]
    assert report["training_steps"]["recover"] == 6
    assert summary["sparsity"] == pytest.approx(0.6, abs=1e-3)


def test_terminal_failure_removes_checkpoints(tmp_path: Path) -> None:
    from worker.pipelines.errors import JobCanceled

    env = make_env(tmp_path)
    s = spec(env["model_id"], pruning={"method": "none"})
    saved: list[str] = []
    ckdir = env["settings"].work_dir / "t" / "checkpoints"
    rep = MemoryReporter(cancel_at_stage="measure")
    original = rep._write_stage

    def watch(stage: str, progress: float) -> bool:
        if stage == "measure":
            saved.append(str((ckdir / "stage.json").exists()))
        return original(stage, progress)

    rep._write_stage = watch  # type: ignore[method-assign]
    with pytest.raises(JobCanceled):
        compress.run_pipeline(s, ctx_for(env, tmp_path, rep))
    assert saved == ["True"]
    assert not ckdir.exists()
