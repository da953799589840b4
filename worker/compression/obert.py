"""The Optimal BERT Surgeon (Kurtic et al. 2022): second-order pruning with a block-diagonal
empirical Fisher, its saliency scores and its optimal update of the remaining weights.

One pruning step (one-shot, or one step of a gradual schedule) is split into
``num_recomputations`` sub-steps whose targets interpolate linearly from the current to the
requested sparsity; every sub-step re-collects gradients at the current weights, rebuilds and
inverts the Fisher blocks, scores, selects and updates.

The update is the paper's: the sum over the removed units Q (one weight, or a block of 4) of
``dw = -F^-1 E_Q^T ([F^-1]_QQ)^-1 w_Q`` (for a single weight ``-w_j F^-1 e_j / [F^-1]_jj``).
``update="joint"`` instead solves, per Fisher block, the exact OBS problem for the whole set
of weights removed in that block; blocks are independent under the block-diagonal Fisher.
Scores are the paper's single-unit saliencies: ``w_j^2 / (2 [F^-1]_jj)`` and, for block4,
``1/2 w_Q^T ([F^-1]_QQ)^-1 w_Q``.

Gradients of pruned weights are treated as zero (the Fisher rows and columns of masked
weights are cleared), so already-pruned weights stay decoupled and at zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import torch
from torch import Tensor, nn

from worker.compression.config import OBertConfig
from worker.compression.fisher import BlockFisherInverse, batched_spd_solve
from worker.compression.gradients import GradientSource
from worker.compression.request import PruneRequest
from worker.compression.selection import (
    BLOCK,
    Structure,
    expand_units,
    pruned_units,
    select_to_prune,
    unit_count,
)


class FisherMemoryError(MemoryError):
    """The Fisher state of a target cannot fit in ``memory_budget_bytes``."""

    def __init__(self, estimate: int, budget: int, detail: str) -> None:
        self.estimate = estimate
        self.budget = budget
        super().__init__(
            f"oBERT needs an estimated {estimate} bytes ({estimate / 2**30:.3f} GiB) of Fisher "
            f"state for {detail}, above memory_budget_bytes={budget} "
            f"({budget / 2**30:.3f} GiB); raise the budget or lower block_size/chunk_size"
        )


def fisher_memory_estimate(
    targets: Mapping[str, nn.Linear], config: OBertConfig, structure: Structure
) -> tuple[dict[str, int], int]:
    """Estimated resident bytes per target while its Fisher is built (the fp32 blocks and the
    gradient buffer of ``chunk_size`` rows), and the transient float64 workspace of inverting
    or updating one chunk of blocks (needed once, one target at a time)."""
    block = config.resolved_block_size(structure)
    per_target: dict[str, int] = {}
    workspace = 0
    for name, module in targets.items():
        n = module.weight.numel()
        state = BlockFisherInverse.state_bytes(n, block, torch.float32)
        blocks = -(-n // block)
        grad_buffer = min(config.chunk_size, config.num_grads) * blocks * block * 4
        per_target[name] = state + grad_buffer
        workspace = max(workspace, 4 * min(blocks, config.inverse_chunk_blocks) * block * block * 8)
    return per_target, workspace


def plan_groups(
    targets: Mapping[str, nn.Linear], config: OBertConfig, structure: Structure
) -> list[list[str]]:
    """Consecutive groups of targets whose estimated Fisher memory (their states and gradient
    buffers plus one inversion workspace) fits the budget; raises :class:`FisherMemoryError`
    (before any work) when a single target cannot fit. One group means one gradient pass per
    sub-step; with several, a global selection needs two passes per group (scores, then
    update), so a budget that holds everything is much faster."""
    per_target, workspace = fisher_memory_estimate(targets, config, structure)
    budget = config.memory_budget_bytes
    groups: list[list[str]] = []
    current: list[str] = []
    used = workspace
    for name, need in per_target.items():
        if need + workspace > budget:
            raise FisherMemoryError(need + workspace, budget, f"target {name!r}")
        if current and used + need > budget:
            groups.append(current)
            current, used = [], workspace
        current.append(name)
        used += need
    if current:
        groups.append(current)
    return groups


def _cycle_batches(source: GradientSource) -> Iterator[Mapping[str, Tensor]]:
    while True:
        empty = True
        for batch in source.batches():
            empty = False
            yield batch
        if empty:
            raise ValueError("the gradient source yielded no batches")


def collect_fisher(
    source: GradientSource,
    targets: Mapping[str, nn.Linear],
    masks: Mapping[str, Tensor],
    config: OBertConfig,
    block_size: int,
    device: torch.device,
    tick: Callable[[], None],
) -> dict[str, BlockFisherInverse]:
    """Accumulate ``num_grads`` mini-batch gradients of the loss into a Fisher per target and
    invert them (masked by ``masks``). The model runs in eval mode (dropout off); only the
    target weights require gradients during collection; the autograd engine accumulates each
    gradient straight into its row of a block-layout buffer (``param.grad`` is set to a view of
    that row), so no copy or transpose is made. Train/eval modes, ``requires_grad`` flags and
    existing ``.grad`` tensors are restored afterwards."""
    model = source.model
    fishers = {
        name: BlockFisherInverse(m.weight.numel(), block_size, config.damp, device)
        for name, m in targets.items()
    }
    chunk = min(config.chunk_size, config.num_grads)
    buffers = {
        name: torch.zeros(chunk, fishers[name].padded, device=m.weight.device)
        for name, m in targets.items()
    }
    modes = {module: module.training for module in model.modules()}
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    weights = {name: m.weight for name, m in targets.items()}
    saved_grads = {name: w.grad for name, w in weights.items()}
    target_ids = {id(w) for w in weights.values()}
    try:
        model.eval()
        for p in params:
            p.requires_grad_(id(p) in target_ids)
        batches = _cycle_batches(source)
        row = 0
        with torch.enable_grad():
            for done in range(1, config.num_grads + 1):
                batch = next(batches)
                for name, w in weights.items():
                    w.grad = buffers[name][row, : w.numel()].view(w.shape)
                loss = source.loss_fn(model, batch)
                loss.backward()  # type: ignore[no-untyped-call]
                row += 1
                if row == chunk or done == config.num_grads:
                    for name in weights:
                        fishers[name].add_grads(buffers[name][:row], clear=True)
                    row = 0
                tick()
    finally:
        for module, mode in modes.items():
            module.train(mode)
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
        for name, w in weights.items():
            w.grad = saved_grads[name]
    del buffers
    for name, fisher in fishers.items():
        fisher.invert(
            masks[name].reshape(-1),
            chunk_blocks=config.inverse_chunk_blocks,
            precision=config.inverse_precision,
        )
    return fishers


def obert_scores(
    weights: Mapping[str, Tensor],
    fishers: Mapping[str, BlockFisherInverse],
    structure: Structure,
) -> dict[str, Tensor]:
    """oBERT saliencies per unit: ``w^2 / (2 [F^-1]_jj)`` (unstructured, weight-shaped) or
    ``1/2 w_Q^T ([F^-1]_QQ)^-1 w_Q`` per block of 4 along the input dimension
    ((out, in/4))."""
    out: dict[str, Tensor] = {}
    for name, weight in weights.items():
        fisher = fishers[name]
        w = weight.detach().reshape(-1).to(fisher.device, torch.float64)
        if structure == "unstructured":
            d = fisher.diag().to(torch.float64).clamp_min(torch.finfo(torch.float64).tiny)
            score = w * w / (2.0 * d)
            out[name] = score.float().view(weight.shape)
        else:
            sub = fisher.diag_blocks(BLOCK).to(torch.float64)
            wq = w.view(-1, BLOCK, 1)
            sol = batched_spd_solve(sub, wq)
            score = 0.5 * (wq * sol).sum(dim=(1, 2))
            out[name] = score.float().view(weight.shape[0], weight.shape[1] // BLOCK)
    return out


def _apply_update(
    targets: Mapping[str, nn.Linear],
    fishers: Mapping[str, BlockFisherInverse],
    new_units: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    structure: Structure,
    config: OBertConfig,
) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    with torch.no_grad():
        for name, module in targets.items():
            weight = module.weight
            new = expand_units(new_units[name], structure).to(weight.device)
            keep = masks[name] & ~new
            fisher = fishers[name]
            if bool(new.any()):
                dw = fisher.obs_update(
                    weight.reshape(-1),
                    new.reshape(-1),
                    config.inverse_chunk_blocks,
                    joint=config.update == "joint",
                    group=BLOCK if structure == "block4" else 1,
                )
                updated = weight.to(torch.float64) + dw.view(weight.shape).to(weight.device)
                weight.copy_(updated.to(weight.dtype))
            weight.masked_fill_(~keep, 0.0)
            out[name] = keep
    return out


class _Progress:
    def __init__(self, callback: Callable[[float], None] | None, total: int) -> None:
        self.callback = callback
        self.total = max(total, 1)
        self.done = 0

    def tick(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(min(self.done / self.total, 1.0))


def _units_sparsity(request: PruneRequest, masks: Mapping[str, Tensor]) -> float:
    total = sum(unit_count(m.weight, request.structure) for m in request.targets.values())
    done = sum(int(pruned_units(masks[n], request.structure).sum().item()) for n in masks)
    return done / total if total else 0.0


def obert_prune(config: OBertConfig, request: PruneRequest) -> dict[str, Tensor]:
    """The oBERT pruning step (see the module docstring)."""
    source = request.gradients
    if source is None:
        raise ValueError(
            "oBERT pruning needs gradients: pass gradients=GradientSource(model, batches, loss_fn)"
        )
    structure = request.structure
    config.validate(structure)
    block = config.resolved_block_size(structure)
    groups = plan_groups(request.targets, config, structure)
    passes = len(groups) if request.scope == "layerwise" or len(groups) == 1 else 2 * len(groups)
    steps = config.num_recomputations
    progress = _Progress(request.progress, steps * passes * config.num_grads)
    masks = dict(request.masks)
    start = _units_sparsity(request, masks)
    for step in range(1, steps + 1):
        target = start + (request.sparsity - start) * step / steps
        if step == steps:
            target = request.sparsity
        masks = _obert_step(config, request, masks, target, groups, block, progress)
    if request.progress is not None:
        request.progress(1.0)
    return masks


def _obert_step(
    config: OBertConfig,
    request: PruneRequest,
    masks: dict[str, Tensor],
    sparsity: float,
    groups: list[list[str]],
    block: int,
    progress: _Progress,
) -> dict[str, Tensor]:
    source = request.gradients
    assert source is not None
    structure = request.structure

    def build(group: list[str]) -> dict[str, BlockFisherInverse]:
        return collect_fisher(
            source,
            {n: request.targets[n] for n in group},
            masks,
            config,
            block,
            request.device,
            progress.tick,
        )

    def weights_of(group: list[str]) -> dict[str, Tensor]:
        return {n: request.targets[n].weight for n in group}

    already = {n: pruned_units(masks[n], structure) for n in request.targets}
    out = dict(masks)
    if request.scope == "layerwise" or len(groups) == 1:
        for group in groups:
            fishers = build(group)
            scores = obert_scores(weights_of(group), fishers, structure)
            new = select_to_prune(scores, {n: already[n] for n in group}, sparsity, request.scope)
            out.update(
                _apply_update(
                    {n: request.targets[n] for n in group},
                    fishers,
                    new,
                    masks,
                    structure,
                    config,
                )
            )
            for fisher in fishers.values():
                fisher.free()
        return out
    all_scores: dict[str, Tensor] = {}
    for group in groups:
        fishers = build(group)
        all_scores.update(obert_scores(weights_of(group), fishers, structure))
        for fisher in fishers.values():
            fisher.free()
    new = select_to_prune(all_scores, already, sparsity, "global")
    for group in groups:
        fishers = build(group)
        out.update(
            _apply_update(
                {n: request.targets[n] for n in group},
                fishers,
                {n: new[n] for n in group},
                masks,
                structure,
                config,
            )
        )
        for fisher in fishers.values():
            fisher.free()
    return out
