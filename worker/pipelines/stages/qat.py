"""The `qat` stage: quantization-aware fine-tuning (int8) with the sparsity mask held,
checkpointed as `qat`.

The compressed model is wrapped with fake quantizers (`worker.compression.qat`), trained for
`quantization.qat_steps` steps (default: the recovery length) with the pruning mask held
(distilling from the dense teacher when distillation is enabled), then converted: the fp32
model gets its weights baked onto the int8 grid and the int8 model uses the learned
per-channel scales. The fake-quant model is kept for the export stage's parity check.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from torch import nn

from worker.pipelines.context import PipelineContext
from worker.pipelines.stages.checkpoints import Part, Saved
from worker.pipelines.stages.dense import Dense
from worker.pipelines.stages.load import Loaded
from worker.pipelines.stages.plan import on_step, qat_steps, train_config
from worker.pipelines.stages.quantize import Quantized
from worker.pipelines.stages.recover import Recovered
from worker.pipelines.train import HoldMask, TrainCallback, distill_config, train

log = logging.getLogger(__name__)

QAT = "qat"  # the tensor group of the fake-quant model


def prepare(model: nn.Module) -> nn.Module:
    """A fake-quant copy of `model` (the original is left as is)."""
    from worker.compression.qat import prepare_qat

    return prepare_qat(copy.deepcopy(model))


def finish(qat_model: nn.Module, steps: dict[str, int]) -> Quantized:
    from worker.compression.qat import convert_qat

    qat_model.eval()
    device = next(qat_model.parameters()).device
    fp32, qmodel = convert_qat(qat_model)
    return Quantized(fp32.to(device).eval(), qmodel, qat_model, steps)


def stage_qat(loaded: Loaded, dense: Dense, rec: Recovered, ctx: PipelineContext) -> Quantized:
    from worker.compression import hold_masks

    spec = loaded.spec
    cfg = train_config(spec, recovery=True)
    n_steps = qat_steps(spec, len(loaded.train_items))
    ctx.reporter.stage("qat")
    qat_model = prepare(rec.model).to(ctx.device)
    callbacks: list[TrainCallback] = []
    hold = None
    if rec.masks:
        # The wrappers keep the original Linear modules (at `<name>.linear`), so the hold
        # zeroes their weights (and gradients) as before.
        targets: dict[str, Any] = {
            name: qat_model.get_submodule(name + ".linear") for name in rec.masks
        }
        hold = hold_masks(targets, rec.masks)
        callbacks.append(HoldMask(hold))
    steps: dict[str, int] = {}
    if n_steps > 0:
        dist = spec.distillation
        res = train(
            qat_model,
            loaded.tokenizer,
            loaded.train_items,
            cfg,
            ctx.device,
            task=loaded.task,
            callbacks=callbacks,
            on_step=on_step(ctx),
            steps=n_steps,
            teacher=dense.teacher if dist.enabled else None,
            distill=distill_config(spec, rec.kept_layers),
            telemetry=ctx.reporter.train_meter(),
        )
        steps[QAT] = res.steps
    if hold is not None:
        hold.reapply()
        hold.remove()
    log.info("QAT done (%d steps)", steps.get(QAT, 0))
    return finish(qat_model, steps)


def save_qat(q: Quantized) -> Part:
    assert q.qat_model is not None  # `stage_qat` and `restore_qat` always set it
    return Part({"steps": q.steps}, {QAT: q.qat_model.state_dict()})


def restore_qat(rec: Recovered, saved: Saved, ctx: PipelineContext) -> Quantized:
    qat_model = prepare(rec.model).to(ctx.device)
    qat_model.load_state_dict(saved.tensors(QAT))
    return finish(qat_model, {k: int(v) for k, v in saved.meta["steps"].items()})
