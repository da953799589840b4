"""Uploaded weights checked against the parameters a config implies, by name, shape and dtype,
without torch (the upload check and the worker's load check both call `check_coverage`).

The weights must hold every base-model parameter of the family's table entry with the shape
the config gives and a floating-point dtype, under the family's prefix (`roberta.`, as a task
model saves them) or none (as the base model saves them); `LayerNorm.gamma`/`beta` are read
as the legacy names of `weight`/`bias`. Only a task head may be missing (the worker then
initialises it), and BERT's pooler when the checkpoint was saved without one (BertForMaskedLM
and the token, span and LM heads save theirs without): nothing else is initialised at random.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from app.architectures.layout import Architecture, Config, Shape
from app.catalog import TASKS


class TensorInfo(Protocol):
    """A weight as a file header gives it (app.services.safetensors_header.TensorInfo)."""

    @property
    def dtype(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def numel(self) -> int: ...


FLOAT_DTYPES = frozenset({"F32", "F16", "BF16"})
_LEGACY = ((".LayerNorm.gamma", ".LayerNorm.weight"), (".LayerNorm.beta", ".LayerNorm.bias"))
_SHOWN = 5  # problems named in a message; the rest are counted


class LayoutError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Coverage:
    num_parameters: int  # base-model, pooler and task-head parameters in the weights
    has_pooler: bool
    has_head: bool


def _canonical(name: str) -> str:
    for old, new in _LEGACY:
        if name.endswith(old):
            return name[: -len(old)] + new
    return name


def _fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _listing(items: list[str]) -> str:
    more = len(items) - _SHOWN
    return ", ".join(items[:_SHOWN]) + (f" and {more} more" if more > 0 else "")


def head_tensors(arch: Architecture) -> frozenset[str]:
    """The weight and bias names of every task's output Linear (model root)."""
    return frozenset(f"{arch.head_output(t)}.{part}" for t in TASKS for part in ("weight", "bias"))


def _base_tensors(
    arch: Architecture, tensors: Mapping[str, TensorInfo], known: set[str]
) -> tuple[dict[str, TensorInfo], str]:
    """The tensors under the base model, by canonical name without the prefix; and the prefix
    the file uses (the family's, or ''). A parameter under two names (with and without the
    prefix, or a legacy and a current name) is refused: which one loads is not obvious."""
    prefix = arch.base_prefix if any(n.startswith(arch.base_prefix) for n in tensors) else ""
    heads = head_tensors(arch)
    base: dict[str, TensorInfo] = {}
    for name, info in tensors.items():
        if name in heads:
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


def _check_heads(
    arch: Architecture, tensors: Mapping[str, TensorInfo], widths: set[int]
) -> list[str]:
    """Each task's output Linear present is whole (weight and bias), labels x a width the
    config gives (the hidden size; DeBERTa's pooler_hidden_size too) and floating-point."""
    problems: list[str] = []
    shown = " or ".join(str(w) for w in sorted(widths))
    for output in sorted({arch.head_output(t) for t in TASKS}):
        weight, bias = tensors.get(f"{output}.weight"), tensors.get(f"{output}.bias")
        if weight is None or bias is None:
            if weight is not None or bias is not None:
                part = "weight" if weight is not None else "bias"
                problems.append(f"the task head has only {output}.{part}")
            continue
        labels = weight.shape[0] if len(weight.shape) == 2 else 0
        fits = labels >= 1 and len(weight.shape) == 2 and weight.shape[1] in widths
        if not fits or bias.shape != (labels,):
            problems.append(
                f"the task head {output}.weight {_fmt(weight.shape)} / {output}.bias "
                f"{_fmt(bias.shape)} does not fit hidden size {shown}"
            )
        problems += [
            f"{output}.{part} has dtype {t.dtype}, not F32, F16 or BF16"
            for part, t in (("weight", weight), ("bias", bias))
            if t.dtype not in FLOAT_DTYPES
        ]
    return problems


def _head_names(arch: Architecture) -> str:
    prefixes = sorted({p for t in TASKS for p in arch.task_heads(t)})
    return ", ".join(f"{p}*" for p in prefixes)


def check_coverage(
    arch: Architecture, raw_config: Mapping[str, object], tensors: Mapping[str, TensorInfo]
) -> Coverage:
    """Raises LayoutError naming the missing, misshapen or wrongly typed parameters; for a
    config already checked by app.services.model_inspect.check_config."""
    config: Config = arch.config(raw_config)
    expected = arch.parameters(config)
    h = config.hidden
    pooler: dict[str, Shape] = {}
    if arch.optional_pooler:
        pooler = {arch.optional_pooler[0]: (h, h), arch.optional_pooler[1]: (h,)}
    base, prefix = _base_tensors(arch, tensors, {*expected, *pooler})
    missing = [f"{prefix}{k} {_fmt(s)}" for k, s in expected.items() if k not in base]
    pooled = [k for k in pooler if k in base]
    if len(pooled) == 1:  # the pooler is absent, or whole
        missing += [f"{prefix}{k} {_fmt(pooler[k])}" for k in pooler if k not in base]
    problems = _check_present(expected, base, prefix) + _check_present(pooler, base, prefix)
    widths = {h} | (
        {config.num("pooler_hidden_size")} if config.get("pooler_hidden_size") else set()
    )
    problems += _check_heads(arch, tensors, widths)
    if missing:
        implied = len(expected) + (2 if pooled else 0)
        numel = sum(math.prod(s) for s in expected.values())
        held = sum(base[k].numel for k in expected if k in base)
        problems.insert(
            0,
            f"{len(missing)} of the {implied} tensors the config implies are missing "
            f"({_listing(missing)}); the {arch.display} encoder has {numel:,} parameters, "
            f"these weights {held:,}",
        )
    if problems:
        more = len(problems) - _SHOWN
        raise LayoutError(
            "the weights do not match config.json: "
            + "; ".join(problems[:_SHOWN])
            + (f"; and {more} more problems" if more > 0 else "")
            + f". Only a task head ({_head_names(arch)}"
            + (", and the pooler when it is absent" if pooler else "")
            + ") may be missing; nothing else is initialised at random"
        )
    heads = tuple({p for t in TASKS for p in arch.task_heads(t)})
    head = [info for name, info in tensors.items() if name.startswith(heads)]
    params = sum(base[k].numel for k in (*expected, *pooled)) + sum(t.numel for t in head)
    return Coverage(params, len(pooled) == 2, any(n in tensors for n in head_tensors(arch)))
