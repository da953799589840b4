"""Targets, masks, mask holding, sparsity, schedule, selection, magnitude pruning, registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import BertModel

from tests.worker.compression.conftest import BERT_PATHS, bert_targets, tiny_bert, tiny_bert_config
from worker.compression import (
    PRUNERS,
    MagnitudeConfig,
    OBertConfig,
    TargetsMismatch,
    apply_masks,
    cubic_sparsity,
    hold_masks,
    layer_linear_targets,
    prune,
    sparsity_of,
)
from worker.compression.selection import select_to_prune

SUFFIXES = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
]


def test_targets_on_task_model_in_order() -> None:
    model = tiny_bert()
    targets = bert_targets(model)
    expected = [f"bert.encoder.layer.{i}.{s}" for i in range(2) for s in SUFFIXES]
    assert list(targets) == expected
    assert all(model.get_submodule(n) is m for n, m in targets.items())


def test_targets_on_bare_encoder() -> None:
    targets = bert_targets(BertModel(tiny_bert_config()))
    assert list(targets) == [f"encoder.layer.{i}.{s}" for i in range(2) for s in SUFFIXES]


def test_a_layer_lacking_a_matrix_is_named() -> None:
    layers = list(tiny_bert().bert.encoder.layer)
    layers[1].intermediate.dense = nn.Identity()  # type: ignore[assignment]
    del layers[1].attention.self.key
    with pytest.raises(TargetsMismatch) as info:
        layer_linear_targets(layers, "x.", BERT_PATHS)
    assert info.value.message == (
        "layer 1 (BertLayer) yields 4 of the 6 prunable matrices its architecture has; "
        "missing: attention.self.key, intermediate.dense"
    )


def test_apply_masks_zeroes_pruned_only() -> None:
    layer = nn.Linear(8, 6)
    before = layer.weight.detach().clone()
    mask = torch.rand(6, 8, generator=torch.Generator().manual_seed(0)) > 0.5
    apply_masks({"l": layer}, {"l": mask})
    assert torch.equal(layer.weight[~mask], torch.zeros(int((~mask).sum())))
    assert torch.equal(layer.weight[mask], before[mask])


def _train_steps(layer: nn.Linear, opt: torch.optim.Optimizer, steps: int, hold: object) -> None:
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 8, generator=gen)
        loss = (layer(x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if hold is not None:
            hold.reapply()  # type: ignore[attr-defined]


@pytest.mark.parametrize("reapply", [True, False])
def test_masks_survive_adamw_steps_only_with_hold(reapply: bool) -> None:
    torch.manual_seed(0)
    layer = nn.Linear(8, 6)
    opt = torch.optim.AdamW(layer.parameters(), lr=1e-2, weight_decay=0.1)
    _train_steps(layer, opt, 5, None)  # dense warm-up: non-zero Adam moments
    mask = torch.ones(6, 8, dtype=torch.bool)
    mask[:, :3] = False
    hold = hold_masks({"l": layer}, {"l": mask})
    assert bool((layer.weight[~mask] == 0).all())
    _train_steps(layer, opt, 5, hold if reapply else None)
    pruned_zero = bool((layer.weight[~mask] == 0).all())
    assert pruned_zero == reapply  # momentum regrows them unless re-applied
    hold.remove()


def test_hold_zeroes_gradients_update_and_remove() -> None:
    layer = nn.Linear(8, 6)
    mask = torch.ones(6, 8, dtype=torch.bool)
    mask[0] = False
    hold = hold_masks({"l": layer}, {"l": mask})
    layer(torch.randn(4, 8)).sum().backward()
    assert layer.weight.grad is not None
    assert bool((layer.weight.grad[0] == 0).all()) and bool((layer.weight.grad[1:] != 0).all())
    mask2 = mask.clone()
    mask2[1] = False
    hold.update({"l": mask2})
    assert bool((layer.weight[1] == 0).all())
    layer.weight.grad = None
    layer(torch.randn(4, 8)).sum().backward()
    assert bool((layer.weight.grad[:2] == 0).all())
    hold.remove()
    layer.weight.grad = None
    layer(torch.randn(4, 8)).sum().backward()
    assert bool((layer.weight.grad[0] != 0).all())


def test_sparsity_of_counts_exact_zeros() -> None:
    a, b = nn.Linear(4, 2), nn.Linear(4, 4)
    with torch.no_grad():
        a.weight[0] = 0.0
        b.weight[:, 0] = 0.0
    report = sparsity_of({"a": a, "b": b})
    assert report.zeros == 8 and report.total == 24
    assert report.per_layer == {"a": 0.5, "b": 0.25}
    assert report.overall == pytest.approx(8 / 24)


def test_cubic_sparsity() -> None:
    assert cubic_sparsity(0, 10, 0.1, 0.9) == pytest.approx(0.1)
    assert cubic_sparsity(10, 10, 0.1, 0.9) == pytest.approx(0.9)
    assert cubic_sparsity(5, 10, 0.0, 0.8) == pytest.approx(0.8 - 0.8 * 0.125)
    assert cubic_sparsity(20, 10, 0.0, 0.8) == pytest.approx(0.8)
    assert cubic_sparsity(-3, 10, 0.0, 0.8) == pytest.approx(0.0)
    assert cubic_sparsity(3, 0, 0.0, 0.8) == pytest.approx(0.8)


def test_global_selection_matches_sort_with_ties() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = {
        "a": torch.randint(0, 5, (7, 9), generator=gen).float(),
        "b": torch.randint(0, 5, (5, 4), generator=gen).float(),
    }
    already = {n: torch.zeros_like(s, dtype=torch.bool) for n, s in scores.items()}
    already["a"][0, :3] = True
    for sparsity in (0.0, 0.1, 0.37, 0.5, 0.99):
        new = select_to_prune(scores, already, sparsity, "global")
        total = 63 + 20
        pruned = sum(int((new[n] | already[n]).sum()) for n in scores)
        assert pruned == max(round(sparsity * total), 3)
        assert not any(bool((new[n] & already[n]).any()) for n in scores)
        chosen = torch.cat([scores[n][new[n]] for n in scores])
        rest = torch.cat([scores[n][~new[n] & ~already[n]] for n in scores])
        if chosen.numel() and rest.numel():
            assert float(chosen.max()) <= float(rest.min())


def _fresh_targets(seed: int = 0) -> dict[str, nn.Linear]:
    return bert_targets(tiny_bert(seed))


@pytest.mark.parametrize("structure", ["unstructured", "block4"])
@pytest.mark.parametrize("scope", ["global", "layerwise"])
@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.77])
def test_magnitude_exact_targets(structure: str, scope: str, sparsity: float) -> None:
    targets = _fresh_targets()
    masks = prune(
        MagnitudeConfig(),
        targets,
        sparsity,
        structure=structure,  # type: ignore[arg-type]
        scope=scope,  # type: ignore[arg-type]
        device=torch.device("cpu"),
    )
    unit = 4 if structure == "block4" else 1
    report = sparsity_of(targets)
    if scope == "global":
        assert report.zeros == round(sparsity * report.total / unit) * unit
    else:
        for module in targets.values():
            n = module.weight.numel()
            assert int((module.weight == 0).sum()) == round(sparsity * n / unit) * unit
    for name, module in targets.items():
        assert torch.equal(masks[name], module.weight != 0)
        if structure == "block4":
            blocks = masks[name].view(module.weight.shape[0], -1, 4)
            assert bool((blocks.all(-1) | (~blocks).all(-1)).all())


def test_magnitude_global_prunes_smallest() -> None:
    targets = _fresh_targets()
    weights = torch.cat([m.weight.detach().abs().flatten() for m in targets.values()])
    k = round(0.6 * weights.numel())
    threshold = weights.sort().values[k - 1]
    prune(MagnitudeConfig(), targets, 0.6, device=torch.device("cpu"))
    kept = torch.cat([m.weight.detach().abs().flatten() for m in targets.values()])
    assert float(kept[kept != 0].min()) >= float(threshold)


def test_magnitude_never_regrows_and_counts_already_pruned() -> None:
    targets = _fresh_targets()
    cpu = torch.device("cpu")
    m1 = prune(MagnitudeConfig(), targets, 0.4, structure="block4", device=cpu)
    # unstructured afterwards: old pruned weights stay pruned and count toward the target
    m2 = prune(MagnitudeConfig(), targets, 0.7, masks=m1, device=cpu)
    for name in targets:
        assert not bool((m2[name] & ~m1[name]).any())
    assert sparsity_of(targets).zeros == round(0.7 * sparsity_of(targets).total)
    # a lower target prunes nothing and regrows nothing
    m3 = prune(MagnitudeConfig(), targets, 0.2, masks=m2, device=cpu)
    assert all(torch.equal(m3[n], m2[n]) for n in targets)


def test_block4_needs_divisible_input() -> None:
    with pytest.raises(ValueError, match="divisible"):
        prune(
            MagnitudeConfig(),
            {"l": nn.Linear(6, 3)},
            0.5,
            structure="block4",
            device=torch.device("cpu"),
        )


def test_registry_dispatch_and_errors() -> None:
    assert set(PRUNERS) == {MagnitudeConfig, OBertConfig}
    with pytest.raises(TypeError, match="no pruning method"):
        prune(object(), {"l": nn.Linear(8, 6)}, 0.5, device=torch.device("cpu"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gradients"):
        prune(OBertConfig(), {"l": nn.Linear(8, 6)}, 0.5, device=torch.device("cpu"))
    with pytest.raises(ValueError, match="sparsity"):
        prune(MagnitudeConfig(), {"l": nn.Linear(8, 6)}, 1.5, device=torch.device("cpu"))
