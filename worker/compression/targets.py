"""Selection of the prunable Linear layers of a BERT-like encoder."""

from __future__ import annotations

from torch import nn

_ENCODER_SUFFIXES: tuple[str, ...] = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


def encoder_linear_targets(model: nn.Module) -> dict[str, nn.Linear]:
    """The encoder's Linear modules of a HF BERT-like model, keyed by qualified name, in model
    order: attention query, key, value, attention output dense, intermediate (FFN in) dense and
    output (FFN out) dense of every layer. Embeddings, pooler and classifier head are excluded.

    Works on task models (``bert.encoder.layer.0.attention.self.query``) and on a bare encoder
    model (``encoder.layer.0.attention.self.query``).
    """
    found: dict[str, nn.Linear] = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        parts = name.split(".")
        if "encoder" not in parts or "layer" not in parts:
            continue
        if any(name.endswith("." + suffix) for suffix in _ENCODER_SUFFIXES):
            found[name] = module
    return found
