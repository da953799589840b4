"""A job's checkpoints as the stages see them: each checkpointed stage gives its part (meta and
tensors) after it ran and reads it back on redelivery; a mid-stage checkpoint (`prune_step`,
the `recover` stage's) is written and read by that stage alone.

On disk (`worker.pipelines.checkpoint`, under `<work_dir>/<job id>/checkpoints`) the `stage`
checkpoint is cumulative: written after each checkpointed stage with the parts of every stage
completed so far (`meta.json`: `stage`, `completed`, `parts` by stage name, the random and
stage-timer states; one safetensors file per named tensor group), so the latest one restores
them all. Saving a stage checkpoint drops the `prune_step` one it supersedes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import Tensor

from app.schemas.job_spec import JobSpec
from worker.pipelines.checkpoint import (
    Checkpoint,
    Checkpoints,
    rng_state,
    set_rng_state,
    spec_digest,
)
from worker.pipelines.context import PipelineContext

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STAGE = "stage"
PRUNE_STEP = "prune_step"
Out = TypeVar("Out")


@dataclass(frozen=True)
class Part:
    """One stage's share of the stage checkpoint: JSON meta and named groups of tensors."""

    meta: dict[str, Any]
    tensors: dict[str, Mapping[str, Tensor]] = field(default_factory=dict)


@dataclass(frozen=True)
class Saved:
    """A completed stage's part, read back from the checkpoint."""

    meta: dict[str, Any]
    checkpoint: Checkpoint

    def tensors(self, name: str) -> dict[str, Tensor]:
        return self.checkpoint.tensors(name)


def checkpoints_for(spec: JobSpec, ctx: PipelineContext) -> Checkpoints | None:
    """`<work_dir>/<job id>/checkpoints`, or None without a job id."""
    if not ctx.job_id:
        return None
    root = ctx.settings.work_dir / ctx.job_id / CHECKPOINTS
    return Checkpoints(root, spec_digest(spec.model_dump_json()))


class JobCheckpoints:
    """The completed stages of one job (restored or run here), and what it resumed from."""

    def __init__(self, store: Checkpoints | None) -> None:
        self.store = store
        self.completed: list[str] = []
        self.resumed_from: dict[str, Any] | None = None
        self._parts: dict[str, Part] = {}
        self._latest: Checkpoint | None = None

    def open(self, ctx: PipelineContext) -> None:
        """Read the latest stage checkpoint, if any (restoring the random and timer states
        it was written with); the stages then restore their parts from it."""
        cp = self.store.latest(STAGE) if self.store is not None else None
        if cp is None:
            return
        if "parts" not in cp.meta:
            log.warning("ignoring checkpoint %s in an older format", cp.folder)
            return
        self._latest = cp
        self.completed = list(cp.meta["completed"])
        self.restore_common(cp, ctx)
        self.resumed_from = {"stage": cp.meta["stage"], "completed": list(self.completed)}
        log.info("resuming after stage %s", cp.meta["stage"])

    def resume(
        self,
        name: str,
        run: Callable[[], Out],
        save: Callable[[Out], Part],
        restore: Callable[[Saved], Out],
        ctx: PipelineContext,
    ) -> Out:
        """Stage `name`'s output: restored from its part of the checkpoint when it completed
        before, else run and checkpointed."""
        cp = self._latest
        if cp is not None and name in self.completed:
            out = restore(Saved(cp.meta["parts"][name], cp))
            self._parts[name] = save(out)
            return out
        out = run()
        self._parts[name] = save(out)
        self.completed.append(name)
        self._write(name, ctx)
        return out

    def _write(self, stage: str, ctx: PipelineContext) -> None:
        if self.store is None:
            return
        meta = {
            "stage": stage,
            "completed": list(self.completed),
            "parts": {n: p.meta for n, p in self._parts.items()},
            **self.common_meta(ctx),
        }
        tensors: dict[str, Mapping[str, Tensor]] = {"rng": rng_state()[0]}
        for part in self._parts.values():
            tensors.update(part.tensors)
        self.store.save(STAGE, meta, tensors)
        self.store.drop(PRUNE_STEP)

    def common_meta(self, ctx: PipelineContext) -> dict[str, Any]:
        """The Python random state and the stage timers (the open stage's so far)."""
        return {"rng": rng_state()[1], "stage_seconds": ctx.reporter.seconds_so_far()}

    def restore_common(self, cp: Checkpoint, ctx: PipelineContext) -> None:
        set_rng_state(cp.tensors("rng"), cp.meta["rng"])
        for name, secs in cp.meta["stage_seconds"].items():
            ctx.reporter.stage_seconds.setdefault(name, secs)

    def clear(self) -> None:
        if self.store is not None:
            self.store.clear()
