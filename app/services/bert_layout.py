"""The parameters a BERT config implies, by name and shape, checked against uploaded weights
without torch.

The worker loads every model as transformers' `BertForSequenceClassification` (transformers
5: absolute position embeddings only). Its parameters are the encoder's (`bert.` prefix, or
none, as `BertModel` saves them; `LayerNorm.gamma`/`beta` are the legacy names of
`weight`/`bias`), the pooler and the task head (`classifier.*`). The weights must hold every
encoder parameter with the shape the config gives and a floating-point dtype; only the task
head may be missing (the worker then initialises it, and the pooler when the checkpoint was
saved without one, as BertForMaskedLM and the token, span and LM heads save theirs): nothing
else is ever initialised at random.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.services.safetensors_header import TensorInfo

PREFIX = "bert."
FLOAT_DTYPES = frozenset({"F32", "F16", "BF16"})
POOLER = ("pooler.dense.weight", "pooler.dense.bias")
HEAD = ("classifier.weight", "classifier.bias")
# BertConfig's defaults for the keys a config may leave out.
DEFAULTS = {"max_position_embeddings": 512, "type_vocab_size": 2}
_LEGACY = ((".LayerNorm.gamma", ".LayerNorm.weight"), (".LayerNorm.beta", ".LayerNorm.bias"))
_SHOWN = 5  # problems named in a message; the rest are counted

Shape = tuple[int, ...]


class LayoutError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Coverage:
    num_parameters: int  # encoder, pooler and head parameters found in the weights
    has_pooler: bool
    has_head: bool


def _attention(prefix: str, h: int) -> dict[str, Shape]:
    out: dict[str, Shape] = {}
    for part in ("self.query", "self.key", "self.value", "output.dense"):
        out[f"{prefix}{part}.weight"] = (h, h)
        out[f"{prefix}{part}.bias"] = (h,)
    out[f"{prefix}output.LayerNorm.weight"] = (h,)
    out[f"{prefix}output.LayerNorm.bias"] = (h,)
    return out


def encoder_layout(config: Mapping[str, Any]) -> dict[str, Shape]:
    """BertModel's parameters without the pooler (names without the `bert.` prefix), for a
    config already checked by model_inspect.check_config."""
    h, ffn = int(config["hidden_size"]), int(config["intermediate_size"])
    positions = int(config.get("max_position_embeddings", DEFAULTS["max_position_embeddings"]))
    types = int(config.get("type_vocab_size", DEFAULTS["type_vocab_size"]))
    out: dict[str, Shape] = {
        "embeddings.word_embeddings.weight": (int(config["vocab_size"]), h),
        "embeddings.position_embeddings.weight": (positions, h),
        "embeddings.token_type_embeddings.weight": (types, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    cross = bool(config.get("add_cross_attention")) and bool(config.get("is_decoder"))
    for i in range(int(config["num_hidden_layers"])):
        layer = f"encoder.layer.{i}."
        out.update(_attention(f"{layer}attention.", h))
        if cross:
            out.update(_attention(f"{layer}crossattention.", h))
        out[f"{layer}intermediate.dense.weight"] = (ffn, h)
        out[f"{layer}intermediate.dense.bias"] = (ffn,)
        out[f"{layer}output.dense.weight"] = (h, ffn)
        out[f"{layer}output.dense.bias"] = (h,)
        out[f"{layer}output.LayerNorm.weight"] = (h,)
        out[f"{layer}output.LayerNorm.bias"] = (h,)
    return out


def _canonical(name: str) -> str:
    for old, new in _LEGACY:
        if name.endswith(old):
            return name[: -len(old)] + new
    return name


def _base_tensors(
    tensors: Mapping[str, TensorInfo], known: set[str]
) -> tuple[dict[str, TensorInfo], str]:
    """The tensors under the base model, by canonical name without the prefix; and the
    prefix the file uses ('bert.' or ''). A parameter under two names (with and without the
    prefix, or a legacy and a current name) is refused: which one loads is not obvious."""
    prefix = PREFIX if any(n.startswith(PREFIX) for n in tensors) else ""
    base: dict[str, TensorInfo] = {}
    for name, info in tensors.items():
        if name in HEAD:
            continue
        if not name.startswith(prefix):
            if _canonical(name) in known:
                raise LayoutError(f"the weights hold {name} both with and without {prefix}")
            continue
        key = _canonical(name[len(prefix) :])
        if key in base:
            raise LayoutError(f"the weights hold {prefix}{key} twice (under two names)")
        base[key] = info
    return base, prefix


def _fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _listing(items: list[str]) -> str:
    more = len(items) - _SHOWN
    return ", ".join(items[:_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _check_present(
    expected: Mapping[str, Shape], found: Mapping[str, TensorInfo], shown: str
) -> list[str]:
    problems: list[str] = []
    for key, shape in expected.items():
        info = found.get(key)
        if info is None:
            continue
        if info.shape != shape:
            problems.append(f"{shown}{key} has shape {_fmt(info.shape)}, not {_fmt(shape)}")
        elif info.dtype not in FLOAT_DTYPES:
            problems.append(f"{shown}{key} has dtype {info.dtype}, not F32, F16 or BF16")
    return problems


def _check_head(tensors: Mapping[str, TensorInfo], h: int) -> list[str]:
    weight, bias = (tensors.get(n) for n in HEAD)
    if weight is None and bias is None:
        return []
    if weight is None or bias is None:
        return [f"the task head has only {HEAD[0] if weight else HEAD[1]}"]
    labels = weight.shape[0] if len(weight.shape) == 2 else 0
    problems = []
    if labels < 1 or weight.shape != (labels, h) or bias.shape != (labels,):
        problems.append(
            f"the task head {HEAD[0]} {_fmt(weight.shape)} / {HEAD[1]} {_fmt(bias.shape)} "
            f"does not fit hidden_size {h}"
        )
    problems += [
        f"{n} has dtype {t.dtype}, not F32, F16 or BF16"
        for n, t in ((HEAD[0], weight), (HEAD[1], bias)) if t.dtype not in FLOAT_DTYPES
    ]  # fmt: skip
    return problems


def check_coverage(config: Mapping[str, Any], tensors: Mapping[str, TensorInfo]) -> Coverage:
    """Raises LayoutError naming the missing, misshapen or wrongly typed parameters."""
    expected = encoder_layout(config)
    h = int(config["hidden_size"])
    pooler: dict[str, Shape] = {POOLER[0]: (h, h), POOLER[1]: (h,)}
    base, prefix = _base_tensors(tensors, {*expected, *pooler})
    missing = [f"{prefix}{k} {_fmt(s)}" for k, s in expected.items() if k not in base]
    pooled = [k for k in POOLER if k in base]
    if len(pooled) == 1:  # the pooler is absent, or whole
        missing += [f"{prefix}{k} {_fmt(pooler[k])}" for k in POOLER if k not in base]
    problems = _check_present(expected, base, prefix) + _check_present(pooler, base, prefix)
    problems += _check_head(tensors, h)
    if missing:
        implied = len(expected) + (2 if pooled else 0)
        numel = sum(math.prod(s) for s in expected.values())
        held = sum(base[k].numel for k in expected if k in base)
        problems.insert(
            0, f"{len(missing)} of the {implied} tensors the config implies are missing "
            f"({_listing(missing)}); the encoder has {numel:,} parameters, these weights "
            f"{held:,}",
        )  # fmt: skip
    if problems:
        raise LayoutError(
            "the weights do not match config.json: " + "; ".join(problems[:_SHOWN])
            + (f"; and {len(problems) - _SHOWN} more problems" if len(problems) > _SHOWN else "")
            + ". Only the task head (classifier.*, and the pooler when it is absent) may be "
            "missing; nothing else is initialised at random"
        )  # fmt: skip
    head = [tensors[n] for n in HEAD if n in tensors]
    params = sum(base[k].numel for k in (*expected, *pooled)) + sum(t.numel for t in head)
    return Coverage(params, len(pooled) == 2, bool(head))
