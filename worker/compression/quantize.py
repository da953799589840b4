"""Dynamic int8 quantization of Linear layers, and a pickle-free state dict for it
(per-tensor weights, or per-channel ones from quantization-aware training)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

_SCALE = ".weight_scale"
_ZERO_POINT = ".weight_zero_point"


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """A dynamically int8-quantized copy of ``model`` (every ``nn.Linear``, per-tensor qint8
    weights, activations quantized on the fly). The original model is left untouched."""
    clone = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantized: nn.Module = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            clone, {nn.Linear}, dtype=torch.qint8, inplace=False
        )
    return quantized


def _quantized_linears(model: nn.Module) -> dict[str, DynamicQuantizedLinear]:
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, DynamicQuantizedLinear)
    }


def int8_state_dict(qmodel: nn.Module) -> dict[str, Tensor]:
    """A plain-tensor state dict of a model from :func:`quantize_dynamic_int8`, suitable for
    safetensors: for each quantized Linear ``{name}.weight`` (int8), ``{name}.weight_scale``
    (float64 scalar), ``{name}.weight_zero_point`` (int64 scalar) and ``{name}.bias`` (fp32);
    every other parameter and buffer as is. Tensors are contiguous copies (no shared storage)."""
    qlinears = _quantized_linears(qmodel)
    out: dict[str, Tensor] = {}
    for name, module in qlinears.items():
        weight, bias = module._packed_params._weight_bias()
        out[name + ".weight"] = weight.int_repr().contiguous().clone()
        if weight.qscheme() == torch.per_tensor_affine:
            out[name + _SCALE] = torch.tensor(weight.q_scale(), dtype=torch.float64)
            out[name + _ZERO_POINT] = torch.tensor(weight.q_zero_point(), dtype=torch.int64)
        elif weight.qscheme() == torch.per_channel_affine and weight.q_per_channel_axis() == 0:
            # per output channel (QAT): 1-d scales and zero points
            scales = weight.q_per_channel_scales().to(torch.float64)
            out[name + _SCALE] = scales.contiguous().clone()
            zero_points = weight.q_per_channel_zero_points().to(torch.int64)
            out[name + _ZERO_POINT] = zero_points.contiguous().clone()
        else:
            raise ValueError(f"{name}: unsupported int8 weight scheme {weight.qscheme()}")
        if bias is not None:
            out[name + ".bias"] = bias.detach().contiguous().clone()
    prefixes = tuple(name + "." for name in qlinears)
    for key, value in qmodel.state_dict().items():
        if prefixes and key.startswith(prefixes):
            continue
        if not isinstance(value, Tensor):
            continue
        out[key] = value.detach().contiguous().clone()
    return out


def load_int8_state_dict(fp32_skeleton: nn.Module, sd: Mapping[str, Tensor]) -> nn.Module:
    """Rebuild an int8 model from :func:`int8_state_dict` output. ``fp32_skeleton`` is a model
    of the same architecture (its weights are not used and it is not modified)."""
    qmodel = quantize_dynamic_int8(fp32_skeleton)
    qlinears = _quantized_linears(qmodel)
    rest: dict[str, Tensor] = dict(sd)
    for name, module in qlinears.items():
        try:
            int_weight = rest.pop(name + ".weight")
            scale = rest.pop(name + _SCALE)
            zero_point = rest.pop(name + _ZERO_POINT)
        except KeyError as exc:
            raise KeyError(f"int8 state dict lacks {exc.args[0]!r}") from None
        bias = rest.pop(name + ".bias", None)
        if scale.dim() == 0:
            qweight = torch._make_per_tensor_quantized_tensor(
                int_weight.to(torch.int8), float(scale.item()), int(zero_point.item())
            )
        else:
            qweight = torch._make_per_channel_quantized_tensor(
                int_weight.to(torch.int8), scale.double(), zero_point.long(), 0
            )
        module.set_weight_bias(qweight, None if bias is None else bias.float())
    prefixes = tuple(name + "." for name in qlinears)
    expected = {k for k in qmodel.state_dict() if not (prefixes and k.startswith(prefixes))}
    missing = sorted(expected - set(rest))
    unexpected = sorted(set(rest) - expected)
    if missing or unexpected:
        raise KeyError(f"int8 state dict mismatch: missing={missing}, unexpected={unexpected}")
    full = qmodel.state_dict()
    full.update(rest)
    qmodel.load_state_dict(full)
    return qmodel
