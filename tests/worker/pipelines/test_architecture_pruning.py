"""Pruning and int8 on every family's full prunable set (prunable_targets): oBERT and
magnitude, unstructured and block4, one-shot and gradual, the target met exactly over all of a
family's matrices, masks held through training; dynamic int8 and QAT (fused ModernBERT Wqkv
and gated Wi included) keep the pruned zeros and follow the float model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from app.schemas.job_spec import GradualSchedule, PruningSpec
from tests.factories.encoder_configs import FAMILIES
from tests.factories.encoders import tokenizer_for
from tests.factories.tiny_bert import sentiment_rows
from tests.worker.pipelines.family_models import first_output, random_inputs, task_model
from worker.compression import MagnitudeConfig, OBertConfig, quantize_dynamic_int8, sparsity_of
from worker.pipelines import pruning as pr
from worker.pipelines.architecture import model_config, prunable_targets
from worker.pipelines.data import Example
from worker.pipelines.package import load_int8_dir, save_int8_dir
from worker.pipelines.stages.qat import finish, prepare
from worker.pipelines.tasks import get_task
from worker.pipelines.train import HoldMask, TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = torch.device("cpu")
TASK = get_task("sequence_classification")
EXAMPLES = [Example(t, None, y) for t, y in sentiment_rows(24, seed=1)]
TRAIN = TrainConfig(max_steps=4, batch_size=8, learning_rate=1e-2, max_length=16)
# QAT fine-tunes gently: its activation ranges (a moving average) follow slowly changing weights
QAT_TRAIN = TrainConfig(max_steps=4, batch_size=8, learning_rate=1e-4, max_length=16)


def _config(method: str) -> Any:
    if method == "magnitude":
        return MagnitudeConfig()
    return OBertConfig(num_grads=4, block_size=16, grad_batch_size=4)


def _gradients(method: str, model: Any, family: str, config: Any) -> Any:
    if method == "magnitude":
        return None
    return pr.gradient_source(
        model, tokenizer_for(family), EXAMPLES, config, task=TASK, max_length=16, device=CPU, seed=0
    )


def _exact(targets: dict[str, Any], sparsity: float, unit: int) -> None:
    """round(sparsity * units) units pruned over the whole set, every one of them whole."""
    rep = sparsity_of(targets)
    total = sum(m.weight.numel() for m in targets.values())
    assert rep.total == total
    assert rep.zeros == round(sparsity * total / unit) * unit


# DeBERTa-v2 with its own position projections (share_att_key false): 8 matrices a layer
SEPARATE = {"share_att_key": False}
CASES = [(f, {}) for f in FAMILIES] + [("deberta-v2", SEPARATE)]
PER_LAYER = {"modernbert": 4}  # Wqkv, Wo, Wi, Wo; the others q, k, v, o, FFN in and out


@pytest.mark.parametrize("structure", ["unstructured", "block4"])
@pytest.mark.parametrize("method", ["magnitude", "obert"])
@pytest.mark.parametrize(
    ("family", "options"), CASES, ids=[f"{f}{'-sep' * bool(o)}" for f, o in CASES]
)
def test_one_shot_then_a_second_step_meet_the_target_exactly(
    family: str, options: dict[str, Any], method: str, structure: str
) -> None:
    model = task_model(family, **options)
    targets = prunable_targets(model)
    per_layer = 8 if options else PER_LAYER.get(family, 6)
    assert len(targets) == per_layer * model_config(model).layers
    spec = PruningSpec(method=method, sparsity=0.7, structure=structure)  # type: ignore[arg-type]
    config = _config(method)
    state = pr.MaskState(targets)
    grads = _gradients(method, model, family, config)
    unit = 4 if structure == "block4" else 1
    pr.prune_once(state, spec, 0.5, config=config, gradients=grads, device=CPU)
    _exact(targets, 0.5, unit)
    first = {n: m.clone() for n, m in (state.masks or {}).items()}
    pr.prune_once(state, spec, 0.7, config=config, gradients=grads, device=CPU)
    _exact(targets, 0.7, unit)
    assert state.masks is not None
    for name, mask in state.masks.items():
        assert not torch.any(mask & ~first[name])  # pruned weights stay pruned
        if structure == "block4":
            blocks = mask.reshape(mask.shape[0], -1, 4)
            assert torch.all(blocks.all(-1) | (~blocks).all(-1))
    state.release()


@pytest.mark.parametrize("family", FAMILIES)
def test_gradual_pruning_reaches_the_target_with_masks_held(family: str) -> None:
    model = task_model(family)
    spec = PruningSpec(
        method="magnitude",
        sparsity=0.6,
        schedule=GradualSchedule(kind="gradual", steps=4, pruning_steps=2),
    )
    state = pr.MaskState(prunable_targets(model))
    cb = pr.gradual_callback(state, spec, 4, config=MagnitudeConfig(), gradients=None, device=CPU)
    seen: list[float] = []
    train(
        model,
        tokenizer_for(family),
        EXAMPLES,
        TRAIN,
        CPU,
        callbacks=[cb],
        on_step=lambda done, total: seen.append(sparsity_of(state.targets).overall),
    )
    assert [s for s, _ in cb.applied] == [2, 4]
    assert seen == sorted(seen) and seen[-1] > 0
    _exact(state.targets, 0.6, 1)
    assert state.masks is not None
    for name, linear in state.targets.items():
        assert torch.all(linear.weight[~state.masks[name]] == 0)
    state.release()


def _half_masks(model: Any) -> dict[str, torch.Tensor]:
    masks: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, linear in prunable_targets(model).items():
            w = linear.weight
            masks[name] = w.abs() > w.abs().median()
            w[~masks[name]] = 0.0
    return masks


@pytest.mark.parametrize("family", FAMILIES)
def test_dynamic_int8_reloads_and_qat_holds_the_mask(family: str, tmp_path: Path) -> None:
    model = task_model(family)
    masks = _half_masks(model)
    inputs = random_inputs(model, 3, 12)
    qmodel = quantize_dynamic_int8(model)
    folder = save_int8_dir(qmodel, model, tokenizer_for(family), tmp_path / "int8")
    torch.testing.assert_close(
        first_output(load_int8_dir(folder), inputs), first_output(qmodel, inputs)
    )
    qat = prepare(model)
    held = {n: qat.get_submodule(n + ".linear") for n in masks}
    from worker.compression import hold_masks

    hold = hold_masks(held, masks)
    train(qat, tokenizer_for(family), EXAMPLES, QAT_TRAIN, CPU, callbacks=[HoldMask(hold)])
    hold.remove()
    done = finish(qat, {"qat": 4})
    fp32, q8 = done.model, done.qmodel
    assert q8 is not None
    for name, mask in masks.items():
        assert torch.all(fp32.get_submodule(name).weight[~mask] == 0)
        int8 = q8.get_submodule(name).weight().int_repr()  # fused Wqkv and gated Wi too
        assert torch.all(int8[~mask] == 0) and q8.get_submodule(name).weight().qscheme() == (
            torch.per_channel_affine
        )
    texts = [e.text for e in EXAMPLES[:6]]  # what the activation ranges were calibrated on
    batch = dict(tokenizer_for(family)(texts, padding=True, return_tensors="pt"))
    fq, q, baked = (first_output(m, batch) for m in (qat.eval(), q8, fp32))
    span = float(fq.abs().max()) + 1e-6
    assert float((q - fq).abs().max()) <= 0.15 * span + 1e-3
    assert float((baked - fq).abs().max()) <= 0.15 * span + 1e-3
