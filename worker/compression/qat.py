"""Quantization-aware training (int8) with a hand-written fake quantizer.

Weights of every ``nn.Linear`` (encoder, pooler, classifier head) are fake-quantized
symmetric per output channel to int8; their inputs per tensor (affine uint8 grid, min/max
tracked by an exponential moving average while training). Word/position/type embeddings are
fake-quantized symmetric per row. LayerNorm, softmax and GELU stay in floating point.
Gradients pass straight through the rounding (STE). The wrappers keep the original
``nn.Linear`` / ``nn.Embedding`` modules, so mask holds registered on their weights keep
working, and a pruned (zero) weight fake-quantizes to exactly zero; their `weight` is the
fake-quantized one, for model code that reads it directly (DeBERTa's `rel_embeddings.weight`).
Fused projections (ModernBERT's `Wqkv`, its gated `Wi`) are Linear layers like any other.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worker.compression.quantize import quantize_dynamic_int8

QMAX = 127
EPS = 1e-12


def weight_scales(weight: Tensor) -> Tensor:
    """Symmetric per-row (output channel) int8 scales: max|w| / 127 (at least EPS)."""
    return (weight.detach().abs().amax(dim=1) / QMAX).clamp_min(EPS)


def fake_quant_weight(weight: Tensor) -> Tensor:
    """Round each row to the symmetric int8 grid; straight-through gradient."""
    scale = weight_scales(weight).unsqueeze(1)
    q = torch.clamp(torch.round(weight / scale), -QMAX, QMAX) * scale
    return weight + (q - weight).detach()


class ActFakeQuant(nn.Module):
    """Per-tensor affine (uint8 grid) fake quantization of activations with an EMA min/max."""

    min_val: Tensor
    max_val: Tensor
    initialized: Tensor

    def __init__(self, momentum: float = 0.1) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("min_val", torch.tensor(0.0))
        self.register_buffer("max_val", torch.tensor(0.0))
        self.register_buffer("initialized", torch.tensor(False))

    def qparams(self) -> tuple[float, int]:
        lo = min(float(self.min_val), 0.0)
        hi = max(float(self.max_val), 0.0)
        scale = max((hi - lo) / 255.0, EPS)
        zero_point = int(min(255, max(0, round(-lo / scale))))
        return scale, zero_point

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            with torch.no_grad():
                lo, hi = x.detach().min(), x.detach().max()
                if not bool(self.initialized):
                    self.min_val.copy_(lo)
                    self.max_val.copy_(hi)
                    self.initialized.fill_(True)
                else:
                    self.min_val.lerp_(lo, self.momentum)
                    self.max_val.lerp_(hi, self.momentum)
        if not bool(self.initialized):
            return x
        scale, zero_point = self.qparams()
        q = torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)
        return x + (q - x).detach()


class QATLinear(nn.Module):
    linear: nn.Linear

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear
        self.act = ActFakeQuant()

    @property
    def weight(self) -> Tensor:
        """The fake-quantized weight, for code that reads a Linear's weight directly."""
        return fake_quant_weight(self.linear.weight)

    @property
    def bias(self) -> Tensor | None:
        return self.linear.bias

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(self.act(x), fake_quant_weight(self.linear.weight), self.linear.bias)


class QATEmbedding(nn.Module):
    embedding: nn.Embedding

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        self.embedding = embedding

    @property
    def weight(self) -> Tensor:
        """The fake-quantized table, for code that reads an embedding's weight directly
        (DeBERTa's relative position embeddings)."""
        return fake_quant_weight(self.embedding.weight)

    def forward(self, ids: Tensor) -> Tensor:
        e = self.embedding
        return F.embedding(
            ids,
            fake_quant_weight(e.weight),
            e.padding_idx,
            e.max_norm,
            e.norm_type,
            e.scale_grad_by_freq,
            e.sparse,
        )


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def prepare_qat(model: nn.Module) -> nn.Module:
    """Wrap every Linear and Embedding of ``model`` in place; returns ``model``."""
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear):
            _replace(model, name, QATLinear(module))
        elif isinstance(module, nn.Embedding):
            _replace(model, name, QATEmbedding(module))
    return model


def _wrappers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, module in list(model.named_modules()):
        if isinstance(module, QATLinear | QATEmbedding):
            yield name, module


def is_qat(model: nn.Module) -> bool:
    return any(True for _ in _wrappers(model))


def strip_qat(model: nn.Module, *, bake: bool) -> dict[str, Tensor]:
    """Unwrap in place. With ``bake``, weights are replaced by their fake-quantized values
    (exactly on the int8 grid). Returns the per-channel weight scales of each Linear."""
    scales: dict[str, Tensor] = {}
    for name, module in _wrappers(model):
        inner: nn.Linear | nn.Embedding
        if isinstance(module, QATLinear):
            inner = module.linear
            scales[name] = weight_scales(inner.weight).double().cpu()
        else:
            assert isinstance(module, QATEmbedding)
            inner = module.embedding
        if bake:
            with torch.no_grad():
                inner.weight.copy_(fake_quant_weight(inner.weight))
        _replace(model, name, inner)
    return scales


def convert_qat(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """From a QAT model (left untouched): (fp32 model with weights baked onto the int8 grid,
    dynamically quantized int8 model with per-channel weights at the learned scales)."""
    fp32 = copy.deepcopy(model).cpu().eval()
    scales = strip_qat(fp32, bake=True)
    qmodel = quantize_dynamic_int8(fp32)
    for name, scale in scales.items():
        qlin: Any = qmodel.get_submodule(name)
        lin = fp32.get_submodule(name)
        assert isinstance(lin, nn.Linear)
        zeros = torch.zeros(scale.numel(), dtype=torch.long)
        qweight = torch.quantize_per_channel(lin.weight.detach(), scale, zeros, 0, torch.qint8)
        bias = lin.bias
        qlin.set_weight_bias(qweight, None if bias is None else bias.detach().clone())
    return fp32, qmodel
