"""Job spec checks that need the model's config: layers to keep, max_length against the
model's positions, block sizes, and the memory the oBERT Fisher state would take, refused at
submission rather than failing in the worker.

The arithmetic mirrors worker.compression.fisher.BlockFisherInverse.state_bytes (app/ must
not import torch or worker code): a target Linear of n weights holds ceil(n / B) blocks of
B x B float32, B the block size.
"""

from __future__ import annotations

import math
from typing import Any

from app.errors import Unprocessable
from app.schemas.job_spec import JobSpec

FLOAT32_BYTES = 4
# worker.compression.config.OBertConfig.resolved_block_size.
DEFAULT_BLOCK_SIZE = {"unstructured": 50, "block4": 32}
# The built-in models' encoders (all-MiniLM-L6-v2).
BUILTIN_CONFIGS: dict[str, dict[str, int]] = {
    "minilm-l6": {
        "hidden_size": 384,
        "num_hidden_layers": 6,
        "intermediate_size": 1536,
        "max_position_embeddings": 512,
    },
}


def _int(config: dict[str, Any], key: str, default: int) -> int:
    value = config.get(key)
    return value if type(value) is int and value > 0 else default


def encoder_linear_sizes(config: dict[str, Any], keep_layers: int | None = None) -> list[int]:
    """Weights per encoder Linear (query, key, value, attention output, FFN in, FFN out) of
    every kept layer, as worker.compression.targets.encoder_linear_targets selects them."""
    hidden = _int(config, "hidden_size", 768)
    inter = _int(config, "intermediate_size", 4 * hidden)
    layers = _int(config, "num_hidden_layers", 12)
    if keep_layers is not None:
        layers = min(layers, keep_layers)
    per_layer = [hidden * hidden] * 4 + [hidden * inter, inter * hidden]
    return per_layer * layers


def fisher_state_bytes(num_weights: int, block_size: int) -> int:
    blocks = math.ceil(num_weights / block_size)
    return blocks * block_size * block_size * FLOAT32_BYTES


def obert_block_size(spec: JobSpec) -> int:
    obert = spec.pruning.obert
    if obert is not None and obert.block_size is not None:
        return obert.block_size
    return DEFAULT_BLOCK_SIZE[spec.pruning.structure]


def fisher_estimate(spec: JobSpec, config: dict[str, Any]) -> int:
    """Bytes of Fisher state of all encoder targets of an oBERT job (0 for other methods)."""
    if spec.pruning.method != "obert":
        return 0
    block = obert_block_size(spec)
    keep = spec.layers.keep if spec.layers is not None else None
    return sum(fisher_state_bytes(n, block) for n in encoder_linear_sizes(config, keep))


def check_spec(spec: JobSpec, config: dict[str, Any] | None, budget_bytes: int) -> None:
    """Raises Unprocessable naming the field. `config` is the model's config.json (None for a
    model whose config is unknown: only the config-free checks run)."""
    if spec.pruning.method == "obert" and spec.pruning.structure == "block4":
        block = obert_block_size(spec)
        if block % 4:
            raise Unprocessable(
                f"block4 pruning needs a block_size divisible by 4, got {block}",
                code="invalid_spec", field="pruning.obert.block_size",
            )  # fmt: skip
    if config is None:
        return
    layers = config.get("num_hidden_layers")
    if spec.layers is not None and type(layers) is int and spec.layers.keep > layers:
        raise Unprocessable(
            f"the model has {layers} layers; cannot keep {spec.layers.keep}",
            code="invalid_spec", field="layers.keep",
        )  # fmt: skip
    positions = config.get("max_position_embeddings")
    if type(positions) is int and spec.dataset.max_length > positions:
        raise Unprocessable(
            f"the model has {positions} positions; max_length {spec.dataset.max_length} "
            "is longer", code="invalid_spec", field="dataset.max_length",
        )  # fmt: skip
    need = fisher_estimate(spec, config)
    if need > budget_bytes:
        raise Unprocessable(
            f"oBERT would need about {need} bytes ({need / 2**30:.2f} GiB) of Fisher state, "
            f"over the worker budget of {budget_bytes} bytes ({budget_bytes / 2**30:.2f} GiB); "
            "lower pruning.obert.block_size or keep fewer layers",
            code="memory_budget_exceeded", field="pruning.obert.block_size",
        )  # fmt: skip


def model_config(model: str, uploaded_config: dict[str, Any] | None) -> dict[str, Any] | None:
    if uploaded_config is not None:
        return uploaded_config
    builtin = BUILTIN_CONFIGS.get(model)
    return dict(builtin) if builtin is not None else None
