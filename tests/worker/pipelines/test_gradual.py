from __future__ import annotations

from typing import Any

import pytest
import torch

from app.schemas.job_spec import GradualSchedule, PruningSpec
from tests.factories.tiny_bert import sentiment_rows
from worker.compression import cubic_sparsity, sparsity_of
from worker.pipelines import pruning as pr
from worker.pipelines.data import Example
from worker.pipelines.gradual import GradualPruning, prune_points
from worker.pipelines.train import TrainConfig, train

CPU = torch.device("cpu")


def test_prune_points_follow_cubic_and_end_at_target() -> None:
    pts = prune_points(12, 4, 0.0, 0.8, cubic_sparsity)
    assert [s for s, _ in pts] == [3, 6, 9, 12]
    assert pts[-1][1] == 0.8
    values = [v for _, v in pts]
    assert values == sorted(values)
    assert values[0] == pytest.approx(0.8 * (1 - (1 - 0.25) ** 3))
    with_init = prune_points(10, 2, 0.2, 0.6, cubic_sparsity)
    assert with_init[0] == (0, 0.2) and with_init[-1] == (10, 0.6)


def test_callback_applies_pending_points_at_train_end() -> None:
    done: list[float] = []
    cb = GradualPruning([(2, 0.3), (50, 0.9)], done.append, lambda: None)
    for step in range(5):
        cb.on_step_begin(step, 5)
    assert done == [0.3]
    cb.on_train_end(5)
    assert done == [0.3, 0.9]


def test_gradual_schedule_reaches_target_with_mask_held(tiny_model: Any, tokenizer: Any) -> None:
    from worker.compression import MagnitudeConfig
    from worker.pipelines.architecture import prunable_targets

    spec = PruningSpec(
        method="magnitude",
        sparsity=0.7,
        schedule=GradualSchedule(kind="gradual", steps=6, pruning_steps=3),
    )
    state = pr.MaskState(prunable_targets(tiny_model))
    cb = pr.gradual_callback(state, spec, 6, config=MagnitudeConfig(), gradients=None, device=CPU)
    seen: list[float] = []

    def on_step(done: int, total: int) -> None:
        seen.append(sparsity_of(state.targets).overall)

    exs = [Example(t, None, y) for t, y in sentiment_rows(40)]
    cfg = TrainConfig(
        max_steps=10, batch_size=8, learning_rate=1e-2, weight_decay=0.1, max_length=16
    )
    train(tiny_model, tokenizer, exs, cfg, CPU, callbacks=[cb], on_step=on_step)
    assert [s for s, _ in cb.applied] == [2, 4, 6]
    # seen[k] is measured after step k+1; pruning at step s happens before step s+1 runs
    assert seen[:2] == [0.0, 0.0]
    assert seen[2] == pytest.approx(cb.applied[0][1], abs=1e-3)
    assert seen[4] == pytest.approx(cb.applied[1][1], abs=1e-3)
    assert seen == sorted(seen)  # never lower than before: pruned weights stay pruned
    assert seen[-1] == pytest.approx(0.7, abs=1e-3)  # target reached, then held to the end
    assert sparsity_of(state.targets).overall == pytest.approx(0.7, abs=1e-3)
    state.release()


def test_callback_reports_each_pruning_step() -> None:
    seen: list[tuple[int, float]] = []
    cb = GradualPruning(
        [(2, 0.3), (50, 0.9)], lambda _s: None, lambda: None, lambda s, v: seen.append((s, v))
    )
    for step in range(5):
        cb.on_step_begin(step, 5)
    cb.on_train_end(5)
    assert seen == cb.applied == [(2, 0.3), (50, 0.9)]
