"""Calibration of structured pruning (ZipLM): per encoder layer, a structured OBS of the
attention output projection (one structure per head, ``d = hidden / heads`` columns) and one of
the feed-forward output projection (one column per neuron), fed the inputs those Linears see
on the real tokens of calibration batches.

Where the structures live comes from the family's table entry (`AttentionHeads`,
`FeedForward`, the `pos_key` / `pos_query` matrices), resolved per layer by
:func:`layer_structures`; the counts come from the modules (a layer whose heads or neurons
were already removed has fewer). Steps, as the estimators: :meth:`StructuredCalibration.add_batch`
(any number of task batches), :meth:`StructuredCalibration.levels` (every kept count of every
layer in one greedy pass each), `apply_structure` (worker.pipelines.structured_apply) for the
chosen counts, then :meth:`StructuredCalibration.free`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from worker.compression.structured import StructuredLevels, StructuredOBS
from worker.pipelines.architecture import (
    architecture_of,
    attribute,
    layer_list,
    layer_prefix,
    raw_config,
)
from worker.pipelines.errors import ModelInvalid
from worker.pipelines.tasks.base import model_inputs

HEAD_INPUT_ROLES = ("query", "key", "value", "qkv", "pos_key", "pos_query")


@dataclass(frozen=True)
class HeadInput:
    """A Linear whose rows carry the heads: `parts` consecutive blocks of ``heads * d`` rows
    (3 for a fused qkv), head i at rows ``[i*d, (i+1)*d)`` of each block."""

    name: str  # qualified, as prunable_targets keys it
    linear: nn.Linear
    parts: int


@dataclass(frozen=True)
class LayerStructure:
    """One layer's heads and neurons as the table places them (names qualified)."""

    index: int
    heads: int
    head_dim: int
    output_name: str
    output: nn.Linear  # the attention output projection: columns are heads
    head_inputs: tuple[HeadInput, ...]
    neurons: int
    fc1_name: str
    fc1: nn.Linear  # rows are neurons (and gates, rows neurons + j, when gated)
    fc2_name: str
    fc2: nn.Linear  # the FFN output projection: columns are neurons
    gated: bool


def _linear(layer: nn.Module, path: str, where: str) -> nn.Linear:
    module = attribute(layer, path)
    if not isinstance(module, nn.Linear):
        raise ModelInvalid(f"{where}: no Linear at {path}", code="layout_mismatch")
    return module


def layer_structures(model: nn.Module) -> list[LayerStructure]:
    """Every layer's structures, checked against the modules' shapes (ModelInvalid,
    `layout_mismatch`, naming the layer and the matrix when one does not fit)."""
    arch = architecture_of(model)
    config = arch.config(raw_config(model))
    head_dim = config.hidden // config.heads
    prefix = layer_prefix(model)
    att, ffn = arch.attention, arch.ffn
    paths: list[tuple[str, int]] = [
        (p, 1) for p in (att.query, att.key, att.value) if p is not None
    ]
    if att.qkv is not None:
        paths.append((att.qkv, 3))
    paths += [
        (m.path, 1) for m in arch.layer_matrices(config) if m.role in ("pos_key", "pos_query")
    ]
    out: list[LayerStructure] = []
    for i, layer in enumerate(layer_list(model)[2]):
        where = f"{arch.display} layer {i}"
        output = _linear(layer, att.output, where)
        heads = output.in_features // head_dim
        if heads * head_dim != output.in_features:
            raise ModelInvalid(
                f"{where}: {att.output} has {output.in_features} inputs, not a multiple of the "
                f"head size {head_dim}",
                code="layout_mismatch",
            )
        inputs = []
        for path, parts in paths:
            linear = _linear(layer, path, where)
            if linear.out_features != parts * heads * head_dim:
                raise ModelInvalid(
                    f"{where}: {path} has {linear.out_features} rows, expected "
                    f"{parts * heads * head_dim} for {heads} heads of {head_dim}",
                    code="layout_mismatch",
                )
            inputs.append(HeadInput(f"{prefix}{i}.{path}", linear, parts))
        fc1, fc2 = _linear(layer, ffn.fc1, where), _linear(layer, ffn.fc2, where)
        neurons = fc2.in_features
        if fc1.out_features != (2 if ffn.gated else 1) * neurons:
            raise ModelInvalid(
                f"{where}: {ffn.fc1} has {fc1.out_features} rows for {neurons} neurons",
                code="layout_mismatch",
            )
        name = f"{prefix}{i}."
        out.append(
            LayerStructure(
                index=i,
                heads=heads,
                head_dim=head_dim,
                output_name=name + att.output,
                output=output,
                head_inputs=tuple(inputs),
                neurons=neurons,
                fc1_name=name + ffn.fc1,
                fc1=fc1,
                fc2_name=name + ffn.fc2,
                fc2=fc2,
                gated=ffn.gated,
            )
        )
    return out


def real_rows(x: Tensor, mask: Tensor | None, where: str) -> Tensor:
    """The rows of a Linear's input ``x`` that are real tokens: (batch, seq, in) kept where
    ``mask == 1``; an input already unpadded to one row per real token is taken whole."""
    width = x.shape[-1]
    if mask is None:
        return x.reshape(-1, width)
    if tuple(x.shape[:-1]) == tuple(mask.shape):
        return x[mask.to(device=x.device) == 1]
    rows = x.reshape(-1, width)
    if rows.shape[0] == int((mask == 1).sum()):
        return rows
    raise ValueError(
        f"{where} sees input of shape {tuple(x.shape)}, which matches neither the attention "
        f"mask {tuple(mask.shape)} nor its {int((mask == 1).sum())} real tokens"
    )


@dataclass(frozen=True)
class LayerLevels:
    layer: int
    heads: StructuredLevels
    neurons: StructuredLevels


class StructuredCalibration:
    """Structured OBS of every layer's attention output (heads) and FFN output (neurons).

    ``heads[i]`` and ``neurons[i]`` are layer i's :class:`StructuredOBS`; biases are passed,
    so the kept columns' update also refits the bias. State is float64 on ``device`` (the
    model's by default): two ``(in + 1)^2`` matrices per projection. ``stream_energy[i]`` is
    the summed squared norm of the hidden states entering layer i over the same real tokens:
    the residual stream both of its modules write into (exactly the attention's residual; the
    FFN's is the stream after attention, of like scale), a common scale for their losses.
    """

    def __init__(
        self, model: nn.Module, *, damp: float = 0.01, device: torch.device | None = None
    ) -> None:
        self.model = model
        self.layers = layer_structures(model)
        if device is None:
            device = next(model.parameters()).device
        self.device = device
        self.heads = [
            StructuredOBS(s.output.weight, s.head_dim, damp=damp, device=device, bias=s.output.bias)
            for s in self.layers
        ]
        self.neurons = [
            StructuredOBS(s.fc2.weight, 1, damp=damp, device=device, bias=s.fc2.bias)
            for s in self.layers
        ]
        self.stream_energy = [0.0] * len(self.layers)
        self.batches = 0
        self.tokens = 0
        self._mask: Tensor | None = None

    def _hook(self, obs: StructuredOBS, where: str) -> Callable[..., None]:
        def hook(_: nn.Module, args: tuple[Any, ...]) -> None:
            obs.add_batch(real_rows(args[0], self._mask, where))

        return hook

    def _stream_hook(self, i: int) -> Callable[..., None]:
        where = f"layer {i} input"

        def hook(_: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            x = args[0] if args else kwargs.get("hidden_states")
            if not isinstance(x, Tensor):
                raise ModelInvalid(f"{where}: the layer is called without hidden states")
            rows = real_rows(x, self._mask, where)
            self.stream_energy[i] += float(rows.to(torch.float64).square().sum())

        return hook

    def add_batch(self, batch: Mapping[str, Tensor]) -> None:
        """One no-grad eval forward of the model on a task batch (its model inputs), every
        projection's input accumulated over the real tokens (``attention_mask == 1``)."""
        inputs = model_inputs(batch)
        mask = inputs.get("attention_mask")
        handles = [
            layer.register_forward_pre_hook(self._stream_hook(i), with_kwargs=True)
            for i, layer in enumerate(layer_list(self.model)[2])
        ]
        for s, h, n in zip(self.layers, self.heads, self.neurons, strict=True):
            handles.append(s.output.register_forward_pre_hook(self._hook(h, s.output_name)))
            handles.append(s.fc2.register_forward_pre_hook(self._hook(n, s.fc2_name)))
        was_training = self.model.training
        self._mask = mask
        try:
            self.model.eval()
            with torch.no_grad():
                self.model(**inputs)
        finally:
            self._mask = None
            for handle in handles:
                handle.remove()
            self.model.train(was_training)
        self.batches += 1
        self.tokens += (
            int((mask == 1).sum()) if mask is not None else int(inputs["input_ids"].numel())
        )

    def levels(self) -> list[LayerLevels]:
        """Every layer's head and neuron levels (computed once, kept after :meth:`free`)."""
        if self.batches == 0:
            raise RuntimeError("StructuredCalibration.levels before any add_batch")
        return [
            LayerLevels(s.index, h.prune_levels(), n.prune_levels())
            for s, h, n in zip(self.layers, self.heads, self.neurons, strict=True)
        ]

    def free(self) -> None:
        """Drop every estimator's matrices (the levels stay; weights can no longer be had)."""
        for obs in (*self.heads, *self.neurons):
            obs.free()
