"""oBERT pruning: exact OBS on a quadratic, better than magnitude on a trained network,
exact targets, masks never regrow, determinism, memory budget, progress and restoration."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import torch
from torch import Tensor, nn

from tests.worker.compression.conftest import bert_source, bert_targets, tiny_bert
from worker.compression import (
    FisherMemoryError,
    GradientSource,
    MagnitudeConfig,
    OBertConfig,
    plan_groups,
    prune,
    sparsity_of,
)

CPU = torch.device("cpu")


def linear_loss(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    """A loss whose gradient w.r.t. the weight is exactly ``batch["a"]``."""
    out: Tensor = (model.weight.flatten() * batch["a"]).sum()  # type: ignore[operator]
    return out


def quadratic_problem(seed: int) -> tuple[nn.Linear, GradientSource, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(8, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(1, 8, generator=gen))
    grads = torch.randn(16, 8, generator=gen) * torch.linspace(0.3, 2.0, 8)
    batches = [{"a": g, "labels": torch.zeros(1)} for g in grads]
    source = GradientSource(model=layer, batches=lambda: batches, loss_fn=linear_loss)
    hessian = grads.double().T @ grads.double() / 16 + 1e-7 * torch.eye(8, dtype=torch.float64)
    return layer, source, hessian


def constrained_minimum(h: Tensor, w: Tensor, removed: list[int]) -> tuple[Tensor, float]:
    """argmin_dw 1/2 dw^T H dw s.t. (w + dw)_Q = 0, by the KKT system; returns (w + dw, cost)."""
    n, k = w.numel(), len(removed)
    e = torch.zeros(n, k, dtype=torch.float64)
    e[removed, torch.arange(k)] = 1.0
    kkt = torch.zeros(n + k, n + k, dtype=torch.float64)
    kkt[:n, :n], kkt[:n, n:], kkt[n:, :n] = h, e, e.T
    rhs = torch.cat([torch.zeros(n, dtype=torch.float64), -w[removed]])
    dw = torch.linalg.solve(kkt, rhs)[:n]
    return w + dw, float(0.5 * dw @ h @ dw)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_single_block_step_is_exact_obs(seed: int) -> None:
    layer, source, h = quadratic_problem(seed)
    w = layer.weight.detach().double().flatten().clone()
    costs = [constrained_minimum(h, w, [j])[1] for j in range(8)]
    best = min(range(8), key=lambda j: costs[j])
    masks = prune(
        OBertConfig(num_grads=16, block_size=8), {"l": layer}, 1 / 8, gradients=source, device=CPU
    )
    assert (~masks["l"]).flatten().nonzero().flatten().tolist() == [best]
    expected, _ = constrained_minimum(h, w, [best])
    assert torch.allclose(layer.weight.detach().double().flatten(), expected, rtol=1e-4, atol=1e-5)
    assert float(layer.weight.detach()[0, best]) == 0.0


def test_single_block_joint_update_for_two_weights() -> None:
    layer, source, h = quadratic_problem(3)
    w = layer.weight.detach().double().flatten().clone()
    hinv = torch.linalg.inv(h)
    saliency = w**2 / (2 * hinv.diagonal())
    chosen = sorted(saliency.argsort()[:2].tolist())
    config = OBertConfig(num_grads=16, block_size=8, update="joint")
    masks = prune(config, {"l": layer}, 2 / 8, gradients=source, device=CPU)
    assert sorted((~masks["l"]).flatten().nonzero().flatten().tolist()) == chosen
    expected, _ = constrained_minimum(h, w, chosen)
    assert torch.allclose(layer.weight.detach().double().flatten(), expected, rtol=1e-4, atol=1e-5)


def test_default_update_is_the_sum_of_single_weight_updates() -> None:
    layer, source, h = quadratic_problem(3)
    w = layer.weight.detach().double().flatten().clone()
    hinv = torch.linalg.inv(h)
    chosen = sorted((w**2 / (2 * hinv.diagonal())).argsort()[:2].tolist())
    masks = prune(
        OBertConfig(num_grads=16, block_size=8), {"l": layer}, 2 / 8, gradients=source, device=CPU
    )
    assert sorted((~masks["l"]).flatten().nonzero().flatten().tolist()) == chosen
    expected = w.clone()
    for j in chosen:
        expected -= w[j] * hinv[:, j] / hinv[j, j]
    expected[chosen] = 0.0
    assert torch.allclose(layer.weight.detach().double().flatten(), expected, rtol=1e-4, atol=1e-5)


def _mlp_and_data(seed: int) -> tuple[nn.Sequential, Tensor, Tensor]:
    torch.manual_seed(seed)
    x = torch.randn(2048, 16)
    teacher = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 3))
    with torch.no_grad():
        y = teacher(x + 0.5 * torch.randn(2048, 16)).argmax(dim=1)  # noisy: loss stays > 0
    model = nn.Sequential(
        nn.Linear(16, 48), nn.ReLU(), nn.Linear(48, 48), nn.ReLU(), nn.Linear(48, 3)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model, x, y


def _mlp_loss(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    return nn.functional.cross_entropy(model(batch["x"]), batch["labels"])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("sparsity", [0.5, 0.6])
def test_obert_increases_loss_less_than_magnitude(seed: int, sparsity: float) -> None:
    model, x, y = _mlp_and_data(seed)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [{"x": x[i : i + 8], "labels": y[i : i + 8]} for i in range(0, 2048, 8)]
    with torch.no_grad():
        dense = float(_mlp_loss(model, {"x": x, "labels": y}))
    losses = {}
    for config in (MagnitudeConfig(), OBertConfig(num_grads=128, block_size=16)):
        model.load_state_dict(state)
        targets = {str(i): model[i] for i in (0, 2, 4)}
        source = GradientSource(model=model, batches=lambda: batches, loss_fn=_mlp_loss)
        prune(config, targets, sparsity, gradients=source, device=CPU)
        assert sparsity_of(targets).zeros == round(sparsity * sparsity_of(targets).total)
        with torch.no_grad():
            losses[type(config).__name__] = float(_mlp_loss(model, {"x": x, "labels": y}))
    assert losses["OBertConfig"] - dense < losses["MagnitudeConfig"] - dense


@pytest.mark.parametrize("structure", ["unstructured", "block4"])
@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_obert_exact_targets_never_regrow(structure: str, scope: str) -> None:
    model = tiny_bert()
    targets = bert_targets(model)
    config = OBertConfig(num_grads=6, chunk_size=4, num_recomputations=2)
    unit = 4 if structure == "block4" else 1
    masks = None
    previous: dict[str, Tensor] | None = None
    for sparsity in (0.35, 0.7):
        masks = prune(
            config,
            targets,
            sparsity,
            masks=masks,
            structure=structure,  # type: ignore[arg-type]
            scope=scope,  # type: ignore[arg-type]
            gradients=bert_source(model),
            device=CPU,
        )
        for name, module in targets.items():
            assert torch.equal(masks[name], module.weight != 0)
            n = module.weight.numel()
            if scope == "layerwise":
                assert int((~masks[name]).sum()) == round(sparsity * n / unit) * unit
            if previous is not None:
                assert not bool((masks[name] & ~previous[name]).any())
        if scope == "global":
            report = sparsity_of(targets)
            assert report.zeros == round(sparsity * report.total / unit) * unit
        previous = masks


def _run(seed: int, budget: int | None = None) -> dict[str, Tensor]:
    model = tiny_bert(seed)
    targets = bert_targets(model)
    config = OBertConfig(num_grads=5, chunk_size=2)
    if budget is not None:
        config = OBertConfig(num_grads=5, chunk_size=2, memory_budget_bytes=budget)
    prune(config, targets, 0.5, gradients=bert_source(model, seed), device=CPU)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_deterministic_under_a_seed() -> None:
    a, b, c = _run(0), _run(0), _run(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_groups_under_a_small_budget_meet_the_target() -> None:
    small = OBertConfig(num_grads=5, chunk_size=2, memory_budget_bytes=1_200_000)
    assert len(plan_groups(bert_targets(tiny_bert()), small, "unstructured")) > 2
    state = _run(0, budget=1_200_000)  # a few targets per group: two passes per sub-step
    model = tiny_bert()
    model.load_state_dict(state)
    report = sparsity_of(bert_targets(model))
    assert report.zeros == round(0.5 * report.total)


def test_memory_budget_error_names_estimate_and_budget() -> None:
    model = tiny_bert()
    targets = bert_targets(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FisherMemoryError) as info:
        prune(
            OBertConfig(memory_budget_bytes=10_000),
            targets,
            0.5,
            gradients=bert_source(model),
            device=CPU,
        )
    message = str(info.value)
    assert "memory_budget_bytes=10000" in message
    assert str(info.value.estimate) in message and info.value.estimate > 10_000
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_collection_restores_modes_flags_and_grads_and_progress_cancels() -> None:
    model = tiny_bert()
    model.train()
    model.bert.embeddings.requires_grad_(False)
    targets = bert_targets(model)
    query = targets["bert.encoder.layer.0.attention.self.query"]
    query.weight.grad = torch.ones_like(query.weight)
    seen: list[float] = []
    prune(
        OBertConfig(num_grads=4),
        targets,
        0.3,
        gradients=bert_source(model),
        device=CPU,
        progress=seen.append,
    )
    assert all(m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.bert.embeddings.parameters())
    assert all(p.requires_grad for p in model.bert.encoder.parameters())
    assert query.weight.grad is not None and bool((query.weight.grad == 1).all())
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 4

    class Cancelled(Exception):
        pass

    def cancel(frac: float) -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        prune(
            OBertConfig(num_grads=4),
            targets,
            0.5,
            gradients=bert_source(model),
            device=CPU,
            progress=cancel,
        )
    assert all(m.training for m in model.modules())


def test_gradients_are_collected_in_eval_mode() -> None:
    """With dropout on, two identical collections would differ; in eval mode they agree."""
    runs = []
    for _ in range(2):
        model = tiny_bert()
        model.train()
        targets = bert_targets(model)
        prune(OBertConfig(num_grads=4), targets, 0.5, gradients=bert_source(model), device=CPU)
        runs.append(torch.cat([m.weight.detach().flatten() for m in targets.values()]))
    assert torch.equal(runs[0], runs[1])
