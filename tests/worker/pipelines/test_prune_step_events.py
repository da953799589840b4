"""Each pruning step's metrics event carries `prune_step`, the step's number in the job (what
marks it for the job.pruning_step webhook), and structured pruning's speedup."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.worker.pipelines.test_compress import ctx_for, make_env, spec
from worker.pipelines.compress import run_pipeline
from worker.pipelines.progress import MemoryReporter
from worker.pipelines.stages import prune as prune_stage


def test_after_prune_numbers_the_steps_and_passes_a_speedup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scored = SimpleNamespace(primary="f1", value=0.7)
    monkeypatch.setattr(prune_stage, "evaluate_model", lambda *_a: scored)
    applied: list[tuple[int, float]] = []
    loaded: Any = SimpleNamespace(evalset=SimpleNamespace(head=lambda _n: "quick"))
    pruned: Any = SimpleNamespace(
        model=None, masks=SimpleNamespace(applied=applied), prune_metric={}
    )
    rep = MemoryReporter()
    score = prune_stage.after_prune(loaded, pruned, SimpleNamespace(reporter=rep, device="cpu"))  # type: ignore[arg-type]
    for at, sparsity, speedup in ((0, 0.3, None), (40, 0.5, 1.4)):
        applied.append((at, sparsity))  # the masks record a step before it is scored
        score(at, sparsity, speedup=speedup)
    assert rep.step_log == [
        {"step": 0, "sparsity": 0.3, "dev_f1": 0.7, "prune_step": 1},
        {"step": 40, "sparsity": 0.5, "dev_f1": 0.7, "prune_step": 2, "speedup": 1.4},
    ]


def test_a_gradual_runs_step_events_are_numbered(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    rep = MemoryReporter()
    s = spec(
        env["model_id"],
        pruning={
            "method": "magnitude", "sparsity": 0.6,
            "schedule": {"kind": "gradual", "steps": 4, "pruning_steps": 2},
        },
        quantization={"method": "none"},
    )  # fmt: skip
    run_pipeline(s, ctx_for(env, tmp_path, rep))
    steps = [m for m in rep.step_log if "prune_step" in m]
    assert [(m["prune_step"], m["step"]) for m in steps] == [(1, 2), (2, 4)]
    assert all("speedup" not in m and any(k.startswith("dev_") for k in m) for m in steps)
