"""Model-level structured pruning on tiny models of several families (BERT, DistilBERT,
DeBERTa-v2 with and without its position projections, ModernBERT's fused qkv and gated FFN):
calibration on real tokens only, the OBS weights applied with the input side removed
exactly, whole modules removed, the reconstruction error of each level, masks held through
training, the report."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from tests.worker.pipelines.family_models import first_output, random_inputs, task_model
from worker.compression.masks import hold_masks
from worker.pipelines.architecture import prunable_targets
from worker.pipelines.structured_apply import apply_structure, structure_summary
from worker.pipelines.structured_calibrate import (
    StructuredCalibration,
    layer_structures,
    real_rows,
)

pytestmark = pytest.mark.usefixtures("one_thread")

# family, config overrides: biases everywhere ModernBERT allows them; DeBERTa's own pos_*_proj
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "bert": ("bert", {}),
    "distilbert": ("distilbert", {}),
    "deberta-v2": ("deberta-v2", {}),
    "deberta-v2-pos-proj": ("deberta-v2", {"share_att_key": False}),
    "modernbert": ("modernbert", {}),
    "modernbert-bias": ("modernbert", {"attention_bias": True, "mlp_bias": True}),
}
KEPT_HEADS = [3, 1]  # of 4, per layer
KEPT_NEURONS = [40, 7]  # of 96


def model_of(case: str, seed: int = 0) -> Any:
    family, overrides = CASES[case]
    model = task_model(family, seed=seed, **overrides)
    with torch.no_grad():  # nonzero biases, so zeroed ones are seen and refits matter
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.uniform_(-0.5, 0.5)
    return model


def batches(model: Any, n: int = 3) -> list[dict[str, Tensor]]:
    return [random_inputs(model, 4, 32, seed=s) for s in range(n)]


def calibrated(model: Any, damp: float = 0.01) -> StructuredCalibration:
    cal = StructuredCalibration(model, damp=damp)
    for batch in batches(model):
        cal.add_batch(batch)
    cal.levels()
    return cal


def pad_more(batch: dict[str, Tensor], extra: int, pad_id: int) -> dict[str, Tensor]:
    rows = batch["input_ids"].shape[0]
    ids = torch.cat([batch["input_ids"], torch.full((rows, extra), pad_id)], 1)
    mask = torch.cat([batch["attention_mask"], torch.zeros(rows, extra, dtype=torch.long)], 1)
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize(
    ("case", "attn"),
    [("bert", "sdpa"), ("bert", "eager"), ("distilbert", "sdpa"), ("deberta-v2", "eager"),
     ("modernbert", "sdpa"), ("modernbert", "eager")],
)  # fmt: skip
def test_calibration_counts_only_real_tokens(case: str, attn: str) -> None:
    model = model_of(case)
    model.set_attn_implementation(attn)
    short = batches(model)
    pad = int(model.config.pad_token_id or 0)
    cals = []
    for data in (short, [pad_more(b, 24, pad) for b in short]):
        cal = StructuredCalibration(model)
        for batch in data:
            cal.add_batch(batch)
        cals.append(cal)
    real = sum(int(b["attention_mask"].sum()) for b in short)
    assert real < sum(b["input_ids"].numel() for b in short)  # the last rows are padded
    for cal in cals:
        assert cal.tokens == real
        assert all(o.samples == real for o in (*cal.heads, *cal.neurons))
    for one, two in zip(cals[0].levels(), cals[1].levels(), strict=True):
        for x, y in ((one.heads, two.heads), (one.neurons, two.neurons)):
            torch.testing.assert_close(x.loss, y.loss, rtol=1e-4, atol=1e-8 * x.output_energy)
        assert torch.equal(one.heads.order, two.heads.order)


@pytest.mark.parametrize("case", list(CASES))
def test_removing_the_input_side_changes_nothing(case: str) -> None:
    model = model_of(case)
    dense = copy.deepcopy(model)
    cal = calibrated(model)
    # The reference: the same OBS output weights, the input side left in place.
    ref = copy.deepcopy(model)
    for s, r in zip(cal.layers, layer_structures(ref), strict=True):
        for obs, kept, lin in (
            (cal.heads[s.index], KEPT_HEADS[s.index], r.output),
            (cal.neurons[s.index], KEPT_NEURONS[s.index], r.fc2),
        ):
            new = obs.weight_at(kept, compact=False)
            with torch.no_grad():
                lin.weight.copy_(new.weight)
                if lin.bias is not None and new.bias is not None:
                    lin.bias.copy_(new.bias)
    masks = apply_structure(model, cal, KEPT_HEADS, KEPT_NEURONS)
    x = random_inputs(model, 3, 20, seed=7)
    torch.testing.assert_close(first_output(model, x), first_output(ref, x), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(first_output(model, x), first_output(dense, x), atol=1e-4)
    targets = prunable_targets(model)
    dense_targets = prunable_targets(dense)
    for s in cal.layers:
        d, k = s.head_dim, KEPT_HEADS[s.index]
        heads = masks[s.output_name][0].reshape(s.heads, d)
        assert int(heads.all(1).sum()) == k and bool((heads.all(1) == heads.any(1)).all())
        for inp in s.head_inputs:
            rows = masks[inp.name][:, 0]
            assert torch.equal(rows, heads.flatten().repeat(inp.parts))
            assert bool((masks[inp.name] == rows[:, None]).all())
            if inp.linear.bias is not None:
                assert bool((inp.linear.bias[~rows] == 0).all())
        neurons = masks[s.fc2_name][0]
        assert int(neurons.sum()) == KEPT_NEURONS[s.index]
        assert torch.equal(masks[s.fc1_name][:, 0], neurons.repeat(2 if s.gated else 1))
    assert set(masks) <= set(targets)
    assert {n for s in cal.layers for n in (s.output_name, s.fc1_name, s.fc2_name)} <= set(masks)
    for name, mask in masks.items():
        weight = targets[name].weight
        assert bool((weight[~mask] == 0).all())  # wholly gone
        assert bool((dense_targets[name].weight[~mask] != 0).all())  # and was not before


@pytest.mark.parametrize("case", ["bert", "deberta-v2-pos-proj", "modernbert-bias"])
def test_keeping_everything_leaves_the_model_unchanged(case: str) -> None:
    model = model_of(case)
    dense = copy.deepcopy(model)
    cal = calibrated(model)
    layers = cal.layers
    masks = apply_structure(model, cal, [s.heads for s in layers], [s.neurons for s in layers])
    assert all(bool(m.all()) for m in masks.values())
    x = random_inputs(model, 3, 20, seed=7)
    torch.testing.assert_close(first_output(model, x), first_output(dense, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["bert", "distilbert", "deberta-v2-pos-proj", "modernbert-bias"])
def test_keeping_none_removes_the_modules(case: str) -> None:
    model = model_of(case)
    cal = calibrated(model)
    zeros = [0] * len(cal.layers)
    masks = apply_structure(model, cal, zeros, zeros)
    assert not any(bool(m.any()) for m in masks.values())
    seen: list[tuple[nn.Linear, Tensor]] = []
    handles = [
        lin.register_forward_hook(lambda m, _, out: seen.append((m, out)))
        for s in cal.layers
        for lin in (s.output, s.fc2)
    ]
    x = random_inputs(model, 3, 20, seed=7)
    out = first_output(model, x)
    for h in handles:
        h.remove()
    assert bool(out.isfinite().all())
    assert len(seen) == 2 * len(cal.layers)
    for lin, y in seen:  # each module's output is its refitted bias alone (or nothing)
        assert not bool(lin.weight.any())
        bias = lin.bias if lin.bias is not None else torch.zeros(lin.out_features)
        torch.testing.assert_close(y, bias.expand_as(y), rtol=0, atol=0)
    if cal.layers[0].output.bias is not None:  # the refit moved it to the mean output
        assert bool(cal.layers[0].output.bias.any())


def dense_inputs(model: Any, lin: nn.Linear, data: list[dict[str, Tensor]]) -> Tensor:
    """The real-token rows a Linear of the dense model sees on `data`, float64."""
    rows: list[Tensor] = []
    for b in data:
        mask = b["attention_mask"].bool()

        def keep(_: nn.Module, a: tuple[Tensor, ...], mask: Tensor = mask) -> None:
            rows.append(a[0][mask].detach().double())

        h = lin.register_forward_pre_hook(keep)
        with torch.no_grad():
            model(**b)
        h.remove()
    return torch.cat(rows)


@pytest.mark.parametrize("case", ["bert", "distilbert", "deberta-v2", "modernbert-bias"])
def test_reconstruction_error_is_the_level_loss(case: str) -> None:
    model = model_of(case)
    cal = calibrated(model, damp=0.0)  # no ridge term: the loss is the output error itself
    levels = cal.levels()
    data = batches(model)
    inputs = {
        (s.index, kind): dense_inputs(model, lin, data)
        for s in cal.layers
        for kind, lin in (("heads", s.output), ("neurons", s.fc2))
    }
    dense = {
        key: (
            lin.weight.detach().double(),
            None if lin.bias is None else lin.bias.detach().double(),
        )
        for s in cal.layers
        for key, lin in (((s.index, "heads"), s.output), ((s.index, "neurons"), s.fc2))
    }

    def error(key: tuple[int, str], w: Tensor, b: Tensor | None) -> float:
        x, (w0, b0) = inputs[key], dense[key]
        diff = x @ (w0 - w).T
        if b0 is not None and b is not None:
            diff = diff + (b0 - b)
        return float(diff.square().sum())

    for s, lv in zip(cal.layers, levels, strict=True):  # every level, in float64
        for kind, obs, level in (
            ("heads", cal.heads[s.index], lv.heads),
            ("neurons", cal.neurons[s.index], lv.neurons),
        ):
            for kept in {0, 1, level.num_groups // 2, level.num_groups - 1, level.num_groups}:
                new = obs.weight_at(kept, compact=False)
                got = error((s.index, kind), new.weight, new.bias)
                assert got == pytest.approx(float(level.loss[kept]), rel=1e-6, abs=1e-9)
    apply_structure(model, cal, KEPT_HEADS, KEPT_NEURONS)
    for s, lv in zip(cal.layers, levels, strict=True):  # the model's own float32 weights
        for key, lin, level, kept in (
            ((s.index, "heads"), s.output, lv.heads, KEPT_HEADS[s.index]),
            ((s.index, "neurons"), s.fc2, lv.neurons, KEPT_NEURONS[s.index]),
        ):
            bias = None if lin.bias is None else lin.bias.detach().double()
            got = error(key, lin.weight.detach().double(), bias)
            assert got == pytest.approx(float(level.loss[kept]), rel=1e-3)


@pytest.mark.parametrize("case", ["bert", "deberta-v2-pos-proj", "modernbert-bias"])
def test_removed_structures_stay_zero_while_training(case: str) -> None:
    model = model_of(case)
    cal = calibrated(model)
    masks = apply_structure(model, cal, KEPT_HEADS, KEPT_NEURONS)
    targets = prunable_targets(model)
    removed_bias = {
        inp.name: (inp.linear.bias, masks[inp.name][:, 0])
        for s in cal.layers
        for inp in s.head_inputs
        if inp.linear.bias is not None
    } | {
        s.fc1_name: (s.fc1.bias, masks[s.fc1_name][:, 0])
        for s in cal.layers
        if s.fc1.bias is not None
    }
    before = {n: t.weight.detach().clone() for n, t in targets.items()}
    hold = hold_masks(targets, masks)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    model.train()
    for step in range(3):
        batch = random_inputs(model, 4, 16, seed=10 + step)
        loss = model(**batch, labels=torch.tensor([0, 1, 2, 1])).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        hold.reapply()
    hold.remove()
    for name, mask in masks.items():
        weight = targets[name].weight.detach()
        assert bool((weight[~mask] == 0).all())
        assert not torch.equal(weight[mask], before[name][mask])  # the rest trained
    for bias, rows in removed_bias.values():  # unheld, yet never moved: zero gradient
        assert bias is not None and bool((bias[~rows] == 0).all())


def test_summary_counts_what_was_removed() -> None:
    model = model_of("modernbert-bias")
    cal = calibrated(model)
    summary = structure_summary(cal, KEPT_HEADS, KEPT_NEURONS)
    zeros_before = sum(int((p == 0).sum()) for p in model.parameters())
    apply_structure(model, cal, KEPT_HEADS, KEPT_NEURONS)
    zeros_after = sum(int((p == 0).sum()) for p in model.parameters())
    assert summary.removed_parameters == zeros_after - zeros_before > 0
    total = sum(p.numel() for p in model.parameters())
    assert summary.fraction_removed == summary.removed_parameters / total
    for layer, lv in zip(summary.layers, cal.levels(), strict=True):
        assert len(layer.heads_kept) == KEPT_HEADS[layer.layer]
        assert list(layer.heads_kept) == lv.heads.kept_groups(KEPT_HEADS[layer.layer]).tolist()
        assert layer.neurons_kept == KEPT_NEURONS[layer.layer] and layer.neurons == 96
    report = summary.as_dict()
    assert report["heads"] == 8 and report["heads_kept"] == sum(KEPT_HEADS)
    assert report["layers"][1]["kept_heads"] == list(summary.layers[1].heads_kept)


def test_bad_counts_name_the_field() -> None:
    model = model_of("bert")
    cal = calibrated(model)
    with pytest.raises(ValueError, match=r"kept_heads must give one count per layer \(2\)"):
        apply_structure(model, cal, [1], KEPT_NEURONS)
    with pytest.raises(ValueError, match=r"kept_neurons\[1\] must be an integer in \[0, 96\]"):
        apply_structure(model, cal, KEPT_HEADS, [3, 97])
    with pytest.raises(ValueError, match="another model"):
        apply_structure(copy.deepcopy(model), cal, KEPT_HEADS, KEPT_NEURONS)


def test_real_rows_takes_masked_or_unpadded_inputs() -> None:
    x = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    torch.testing.assert_close(real_rows(x, mask, "w"), x.reshape(6, 2)[[0, 1, 3]])
    unpadded = torch.randn(3, 2)
    assert real_rows(unpadded, mask, "w") is not None
    torch.testing.assert_close(real_rows(unpadded, mask, "w"), unpadded)
    with pytest.raises(ValueError, match=r"attn\.Wo sees input of shape"):
        real_rows(torch.randn(5, 2), mask, "attn.Wo")


@pytest.mark.parametrize("case", ["bert", "distilbert", "deberta-v2", "modernbert"])
def test_stream_energy_is_each_layers_input_over_real_tokens(case: str) -> None:
    model = model_of(case).eval()
    pad = int(model.config.pad_token_id or 0)
    data = [pad_more(b, 5, pad) for b in batches(model, 2)]
    cal = StructuredCalibration(model)
    for batch in data:
        cal.add_batch(batch)
    want = torch.zeros(len(cal.layers), dtype=torch.float64)
    with torch.no_grad():
        for batch in data:
            states = model(**batch, output_hidden_states=True).hidden_states
            real = batch["attention_mask"] == 1
            for i in range(len(cal.layers)):  # hidden_states[i] enters layer i
                want[i] += states[i][real].double().square().sum()
    assert bool((want > 0).all())
    torch.testing.assert_close(
        torch.tensor(cal.stream_energy, dtype=torch.float64), want, rtol=1e-6, atol=0.0
    )
