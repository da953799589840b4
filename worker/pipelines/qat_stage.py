"""The `qat` stage: quantization-aware fine-tuning (int8) with the sparsity mask held.

The compressed model is wrapped with fake quantizers (`worker.compression.qat`), trained for
`quantization.qat_steps` steps (default: the recovery length) with the pruning mask held
(distilling from the dense teacher when distillation is enabled), then converted: the fp32
model gets its weights baked onto the int8 grid and the int8 model uses the learned
per-channel scales. The fake-quant model is kept for the export stage's parity check.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

from torch import nn

from worker.pipelines.train import DistillConfig, HoldMask, TrainCallback, TrainConfig, train

if TYPE_CHECKING:
    from worker.pipelines.context import PipelineContext
    from worker.pipelines.state import RunState

log = logging.getLogger(__name__)


def prepare(model: nn.Module) -> nn.Module:
    """A fake-quant copy of `model` (the original is left as is)."""
    from worker.compression.qat import prepare_qat

    return prepare_qat(copy.deepcopy(model))


def finish(state: RunState, qat_model: nn.Module) -> None:
    from worker.compression.qat import convert_qat

    qat_model.eval()
    device = next(qat_model.parameters()).device
    state.qat_model = qat_model
    fp32, state.qmodel = convert_qat(qat_model)
    state.model = fp32.to(device).eval()


def stage_qat(
    state: RunState, ctx: PipelineContext, cfg: TrainConfig, steps: int, on_step: Any
) -> None:
    from worker.compression import hold_masks

    assert state.model is not None and state.data is not None and state.loaded is not None
    ctx.reporter.stage("qat")
    qat_model = prepare(state.model).to(ctx.device)
    masks = state.masks.masks if state.masks is not None else None
    callbacks: list[TrainCallback] = []
    hold = None
    if masks:
        # The wrappers keep the original Linear modules (at `<name>.linear`), so the hold
        # zeroes their weights (and gradients) as before.
        targets: dict[str, Any] = {
            name: qat_model.get_submodule(name + ".linear") for name in masks
        }
        hold = hold_masks(targets, masks)
        callbacks.append(HoldMask(hold))
    if steps > 0:
        dist = state.spec.distillation
        res = train(
            qat_model,
            state.loaded.tokenizer,
            state.data.train,
            cfg,
            ctx.device,
            callbacks=callbacks,
            on_step=on_step,
            steps=steps,
            teacher=state.dense if dist.enabled else None,
            distill=DistillConfig(dist.hardness, dist.temperature) if dist.enabled else None,
        )
        state.steps["qat"] = res.steps
    if hold is not None:
        hold.reapply()
        hold.remove()
    finish(state, qat_model)
    log.info("QAT done (%d steps)", state.steps.get("qat", 0))
