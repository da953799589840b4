"""Where oBERT's gradients come from."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from torch import Tensor, nn


@dataclass
class GradientSource:
    """model: the model whose target weights are pruned.
    batches: returns a fresh iterable of model-input batches (already on the right device, each
        with ``labels``) on every call; it is cycled when it holds fewer than ``num_grads``.
    loss_fn: the task loss of one batch.
    """

    model: nn.Module
    batches: Callable[[], Iterable[Mapping[str, Tensor]]]
    loss_fn: Callable[[nn.Module, Mapping[str, Tensor]], Tensor]
