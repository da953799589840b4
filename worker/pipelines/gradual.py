"""Gradual pruning as a training callback.

The schedule spans `end` optimizer steps (its epochs or steps, capped at the training length).
With k pruning steps, pruning happens at steps round(i * end / k) for i = 1..k (plus step 0
when init_sparsity > 0) to `cubic_sparsity(step, end, init, final)`, so the last one reaches
the target; training then continues to the end with the mask held. A point that falls on or
after the last training step is applied when training ends, so the target is always reached.
"""

from __future__ import annotations

from collections.abc import Callable


def prune_points(
    end: int,
    pruning_steps: int,
    init: float,
    final: float,
    cubic: Callable[[int, int, float, float], float],
) -> list[tuple[int, float]]:
    end = max(1, end)
    k = max(1, min(pruning_steps, end))
    points: list[tuple[int, float]] = []
    if init > 0:
        points.append((0, init))
    for i in range(1, k + 1):
        step = round(i * end / k)
        points.append((step, final if i == k else cubic(step, end, init, final)))
    return points


class GradualPruning:
    """`prune_to(sparsity)` prunes (keeping earlier masks) and updates the held mask;
    `reapply()` re-applies the current mask after each optimizer step."""

    def __init__(
        self,
        points: list[tuple[int, float]],
        prune_to: Callable[[float], None],
        reapply: Callable[[], None],
        on_pruned: Callable[[int, float], None] | None = None,
    ) -> None:
        self.pending = sorted(points)
        self.on_pruned = on_pruned  # called after each pruning step (e.g. to evaluate)
        self.prune_to = prune_to
        self.reapply = reapply
        self.applied: list[tuple[int, float]] = []
        self.pruned = False

    def restore(self, applied: list[tuple[int, float]]) -> None:
        """Resume after the first len(applied) pruning steps (already in the restored masks)."""
        self.applied.extend(applied)
        self.pending = self.pending[len(applied) :]
        self.pruned = self.pruned or bool(applied)

    def _run_due(self, step: int | None) -> None:
        while self.pending and (step is None or self.pending[0][0] <= step):
            at, sparsity = self.pending.pop(0)
            self.prune_to(sparsity)
            self.applied.append((at if step is None else step, sparsity))
            self.pruned = True
            if self.on_pruned is not None:
                self.on_pruned(*self.applied[-1])

    def on_step_begin(self, step: int, total: int) -> None:
        self._run_due(step)

    def on_step_end(self, step: int, total: int) -> None:
        if self.pruned:
            self.reapply()

    def on_train_end(self, total: int) -> None:
        self._run_due(None)
        if self.pruned:
            self.reapply()
