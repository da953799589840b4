"""Checkpoints after each stage and pruning step, and resuming a redelivered job."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from tests.factories.tiny_bert import write_squad_like
from tests.worker.pipelines.test_compress import ctx_for, make_env, spec
from worker.pipelines import compress
from worker.pipelines import pruning as pr
from worker.pipelines.checkpoint import Checkpoints
from worker.pipelines.progress import MemoryReporter
from worker.pipelines.stages import recover
from worker.pipelines.stages.checkpoints import JobCheckpoints, Part, Saved


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


def _part(value: int) -> Part:
    return Part({"v": value}, {f"t{value}": {"w": torch.full((2,), float(value))}})


def test_stage_checkpoint_holds_every_completed_stage(tmp_path: Path) -> None:
    ctx: Any = SimpleNamespace(reporter=MemoryReporter())
    ctx.reporter.stage("evaluate_dense")
    first = JobCheckpoints(Checkpoints(tmp_path / "ck", "d"))
    first.open(ctx)
    assert first.resumed_from is None
    assert first.resume("dense", lambda: 1, _part, lambda saved: -1, ctx) == 1
    assert first.store is not None
    first.store.save("prune_step", {"stage": "recover"}, {})
    assert first.resume("compress", lambda: 2, _part, lambda saved: -2, ctx) == 2
    assert first.store.latest("prune_step") is None  # superseded by the stage checkpoint
    assert ctx.reporter.stage_seconds == {}  # the open stage was only read, not closed

    tensors: list[list[float]] = []

    def restored(saved: Saved) -> int:
        value = int(saved.meta["v"])
        tensors.append(saved.tensors(f"t{value}")["w"].tolist())
        return value

    ctx2: Any = SimpleNamespace(reporter=MemoryReporter())
    again = JobCheckpoints(Checkpoints(tmp_path / "ck", "d"))
    again.open(ctx2)
    assert again.resume("dense", lambda: 10, _part, restored, ctx2) == 1
    assert again.resume("compress", lambda: 20, _part, restored, ctx2) == 2
    assert again.resume("qat", lambda: 3, _part, restored, ctx2) == 3
    assert tensors == [[1.0, 1.0], [2.0, 2.0]]
    assert again.resumed_from == {"stage": "compress", "completed": ["dense", "compress"]}
    assert again.completed == ["dense", "compress", "qat"]
    assert set(ctx2.reporter.stage_seconds) == {"evaluate_dense"}  # the timers, restored
    latest = again.store.latest("stage") if again.store else None
    assert latest is not None and set(latest.meta["parts"]) == {"dense", "compress", "qat"}
    assert latest.tensors("t1")["w"].tolist() == [1.0, 1.0]  # earlier parts are kept
    old = Checkpoints(tmp_path / "old", "d")
    old.save("stage", {"stage": "dense", "completed": ["dense"]}, {})
    older = JobCheckpoints(old)
    older.open(ctx2)  # an older format is ignored: the job starts over
    assert older.resumed_from is None and older.completed == []


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
    prune_calls = _counting(monkeypatch, "stage_prune", fail_first=False)
    recover_calls = _counting(monkeypatch, "stage_recover", fail_first=False)
    qat_calls = _counting(monkeypatch, "stage_qat", fail_first=True)
    with pytest.raises(Boom):
        run_pipeline_once(env, tmp_path)(s)
    ckdir = env["settings"].work_dir / "t" / "checkpoints"
    assert (ckdir / "stage.json").exists()
    rep = MemoryReporter()
    summary = compress.run_pipeline(s, ctx_for(env, tmp_path, rep))
    assert (dense_calls, prune_calls, recover_calls, qat_calls) == ([1], [1], [1], [1, 1])
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


def test_job_interrupted_after_qat_restores_every_checkpointed_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(tmp_path)
    s = spec(
        env["model_id"],
        pruning={"method": "magnitude", "sparsity": 0.5},
        quantization={"method": "qat_int8", "qat_steps": 2},
    )
    calls = {
        name: _counting(monkeypatch, name, fail_first=name == "stage_evaluate")
        for name in ("stage_dense", "stage_recover", "stage_qat", "stage_evaluate")
    }
    with pytest.raises(Boom):
        run_pipeline_once(env, tmp_path)(s)
    rep = MemoryReporter()
    summary = compress.run_pipeline(s, ctx_for(env, tmp_path, rep))
    assert {n: len(c) for n, c in calls.items()} == {
        "stage_dense": 1, "stage_recover": 1, "stage_qat": 1, "stage_evaluate": 2,
    }  # fmt: skip
    assert rep.stages[1:] == ["evaluate", "measure", "export", "package"]
    report = _report(env)
    assert report["resumed_from"] == {"stage": "qat", "completed": ["dense", "compress", "qat"]}
    assert report["training_steps"]["qat"] == 2 and report["int8"] is not None
    assert report["onnx"]["int8"]["parity_vs_qat"]["reference"] == "pytorch_qat"
    assert summary["sparsity"] == pytest.approx(0.5, abs=1e-3)


def run_pipeline_once(env: dict[str, Any], tmp_path: Path) -> Any:
    def go(s: Any) -> Any:
        return compress.run_pipeline(s, ctx_for(env, tmp_path, MemoryReporter()))

    return go


TASK_SPECS: dict[str, dict[str, Any]] = {
    "sequence_classification": {},
    "question_answering": {
        "task": "question_answering",
        "dataset": {"name": "squad", "max_length": 32, "doc_stride": 8},
        "distillation": {"enabled": True},
    },
}


@pytest.mark.parametrize("task", list(TASK_SPECS))
def test_gradual_run_resumes_after_pruning_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str
) -> None:
    env = make_env(tmp_path)
    write_squad_like(env["settings"].data_dir)
    s = spec(
        env["model_id"],
        pruning={
            "method": "magnitude",
            "sparsity": 0.6,
            "schedule": {"kind": "gradual", "steps": 6, "pruning_steps": 3},
        },
        **TASK_SPECS[task],
    )
    assert s.task == task
    saved_masks: list[dict[str, torch.Tensor]] = []
    original_save = recover.save_prune_step

    def save_then_die(ck: Any, pruned: Any, progress: Any, ctx: Any) -> None:
        original_save(ck, pruned, progress, ctx)
        saved_masks.append({k: v.clone() for k, v in pruned.masks.masks.items()})
        if len(saved_masks) == 2:  # the worker dies right after pruning step 2
            raise Boom("worker died")

    monkeypatch.setattr(recover, "save_prune_step", save_then_die)
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
    original_restore = recover.restore_prune_step

    def capture(ck: Any, pruned: Any, cb: Any, progress: Any, ctx: Any) -> None:
        original_restore(ck, pruned, cb, progress, ctx)
        restored.append({k: v.clone() for k, v in pruned.masks.masks.items()})

    monkeypatch.setattr(recover, "restore_prune_step", capture)
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
    assert report["task"] == task
    primary = report["compressed"]["primary_metric"]["name"]
    assert primary == ("f1" if task == "question_answering" else "accuracy")


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
