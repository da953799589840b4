"""The architecture table (app.architectures) applied to a loaded model: its family's entry,
its base model and layer list, its prunable matrices (checked layer by layer), its
feed-forward blocks, the parameters a task may initialise at random, and its inputs."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from torch import nn

from app.architectures import Architecture, Config, UnsupportedArchitecture, architecture_for
from app.catalog import TaskName
from worker.compression.targets import TargetsMismatch, layer_linear_targets
from worker.pipelines.errors import ModelInvalid

TOKEN_TYPE_IDS = "token_type_ids"


def raw_config(model: nn.Module) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise ModelInvalid(f"{type(model).__name__} has no transformers config")
    out: dict[str, Any] = config.to_dict()
    return out


def architecture_of(model: nn.Module) -> Architecture:
    """The table entry of a transformers model (by its config's model_type)."""
    try:
        return architecture_for(raw_config(model))
    except UnsupportedArchitecture as e:
        raise ModelInvalid(e.message, code="unsupported_architecture") from e


def model_config(model: nn.Module) -> Config:
    """The model's config read with its family's keys and defaults."""
    return architecture_of(model).config(raw_config(model))


def base_path(model: nn.Module, arch: Architecture) -> str:
    """'roberta.' for a task model, '' for a bare base model."""
    name = arch.base_prefix.rstrip(".")
    return arch.base_prefix if isinstance(getattr(model, name, None), nn.Module) else ""


def layer_prefix(model: nn.Module) -> str:
    """The qualified name of the layer list plus '.': 'roberta.encoder.layer.'."""
    arch = architecture_of(model)
    return base_path(model, arch) + arch.layers_path + "."


def layer_list(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """The module holding the layer list, the list's attribute name, and the list."""
    path = layer_prefix(model).rstrip(".")
    owner_path, _, name = path.rpartition(".")
    try:
        owner = model.get_submodule(owner_path) if owner_path else model
    except AttributeError as e:
        raise ModelInvalid(f"{type(model).__name__} has no {owner_path}") from e
    layers = getattr(owner, name, None)
    if not isinstance(layers, nn.ModuleList):
        raise ModelInvalid(f"{type(model).__name__} has no layer list at {path}")
    return owner, name, layers


def prunable_targets(model: nn.Module) -> dict[str, nn.Linear]:
    """Every layer's prunable matrices (the family's full set, as its config gives them),
    keyed by qualified name, in model order. Raises ModelInvalid (`layout_mismatch`) when a
    layer yields fewer matrices than the table says, or holds a Linear it does not list:
    nothing is ever pruned partially."""
    arch = architecture_of(model)
    config = arch.config(raw_config(model))
    paths = [m.path for m in arch.layer_matrices(config)]
    _, _, layers = layer_list(model)
    try:
        targets = layer_linear_targets(list(layers), layer_prefix(model), paths)
    except TargetsMismatch as e:
        raise ModelInvalid(f"{arch.display}: {e.message}", code="layout_mismatch") from e
    found = {id(m) for m in targets.values()}
    for i, layer in enumerate(layers):
        extra = [n for n, m in layer.named_modules() if isinstance(m, nn.Linear)
                 and id(m) not in found]  # fmt: skip
        if extra:
            raise ModelInvalid(
                f"{arch.display}: layer {i} holds Linear modules its architecture entry does "
                f"not list ({', '.join(extra[:5])}); they would be left unpruned",
                code="layout_mismatch",
            )
    return targets


def target_layer(name: str, prefix: str) -> str:
    """The layer index (as text) of a prunable target's qualified name under `prefix`."""
    return name[len(prefix) :].split(".", 1)[0] if name.startswith(prefix) else "other"


def attribute(owner: Any, path: str) -> Any:
    """The object at a dotted attribute path (modules, or plain functions such as an
    activation), or None when a step is missing."""
    for part in path.split("."):
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    return owner


def set_attribute(owner: Any, path: str, value: Any) -> None:
    parent_path, _, name = path.rpartition(".")
    setattr(attribute(owner, parent_path) if parent_path else owner, name, value)


@dataclass(frozen=True)
class FeedForwardBlock:
    """One layer's feed-forward Linear pair and activation, as the table places them."""

    layer: nn.Module
    fc1_path: str
    fc2_path: str
    fc1: nn.Linear
    fc2: nn.Linear
    activation: Any
    gated: bool


def feed_forward(layer: nn.Module, arch: Architecture) -> FeedForwardBlock | None:
    """The layer's feed-forward block, or None when it does not have the table's form."""
    ffn = arch.ffn
    fc1, fc2 = attribute(layer, ffn.fc1), attribute(layer, ffn.fc2)
    act = attribute(layer, ffn.activation)
    if not (isinstance(fc1, nn.Linear) and isinstance(fc2, nn.Linear) and callable(act)):
        return None
    return FeedForwardBlock(layer, ffn.fc1, ffn.fc2, fc1, fc2, act, ffn.gated)


def head_prefixes(arch: Architecture, task: TaskName) -> tuple[str, ...]:
    """The task head's parameters (model root): what alone may be initialised at random."""
    return arch.task_heads(task)


def pooler_names(arch: Architecture) -> tuple[str, ...]:
    """The optional pooler's parameters in a task model (BERT's), initialised when the
    checkpoint was saved without one: ('bert.pooler.dense.weight', 'bert.pooler.dense.bias')."""
    return tuple(arch.base_prefix + name for name in arch.optional_pooler)


def uses_token_type_ids(model: nn.Module) -> bool:
    """Whether the model reads token types: its family's config has a type vocabulary and
    its forward takes them (DistilBERT, MPNet and ModernBERT do not)."""
    try:
        config = model_config(model)
    except ModelInvalid:
        return False
    types = config.get("type_vocab_size")
    if not isinstance(types, int) or types < 2:  # one type carries nothing (RoBERTa's)
        return False
    forward = getattr(model, "forward", None)
    try:
        params = inspect.signature(forward).parameters if forward is not None else {}
    except (TypeError, ValueError):
        return False
    return TOKEN_TYPE_IDS in params


def fit_tokenizer_inputs(model: nn.Module, tokenizer: Any) -> None:
    """Have the tokenizer emit token_type_ids only when the model reads them, so that every
    batch the pipeline builds from it (training, scoring, export) feeds the model's inputs."""
    names = getattr(tokenizer, "model_input_names", None)
    if isinstance(names, list) and TOKEN_TYPE_IDS in names and not uses_token_type_ids(model):
        tokenizer.model_input_names = [n for n in names if n != TOKEN_TYPE_IDS]
