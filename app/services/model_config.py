"""The config.json of an uploaded model, checked without torch: its family's entry in
app.architectures (anything else, a decoder, or a class outside the family is
`unsupported_architecture`), the sizes read with the family's keys and bounded, the labels."""

from __future__ import annotations

import re
from typing import Any

from app.architectures import SUPPORTED, Architecture, UnsupportedArchitecture, architecture_for
from app.services.archives import ArchiveError

# The family's sizes (its ConfigKeys: DistilBERT says dim, n_layers, ...), each required.
# XLM-RoBERTa's vocabulary has 250,002 tokens.
SIZE_LIMITS = {"hidden": 4096, "layers": 48, "vocab": 262_144, "heads": 64, "ffn": 16_384}
# Optional keys, bounded (lowest, highest) when present; the family's defaults fill them in.
# DeBERTa-v3 has no token types; -1 is its "none" for relative positions and buckets.
OPTIONAL_LIMITS = {
    "max_position_embeddings": (1, 8192), "type_vocab_size": (0, 16), "num_labels": (1, 100_000),
    "embedding_size": (1, 4096), "max_relative_positions": (-1, 8192),
    "position_buckets": (-1, 8192), "conv_kernel_size": (0, 16), "conv_groups": (1, 4096),
    "relative_attention_num_buckets": (1, 4096), "pooler_hidden_size": (1, 4096),
    "global_attn_every_n_layers": (1, 48), "local_attention": (2, 8192),
}  # fmt: skip
LAYER_TYPES = frozenset({"full_attention", "sliding_attention"})
MAX_LABELS = OPTIONAL_LIMITS["num_labels"][1]
LABEL_ID_RE = re.compile(r"[0-9]{1,9}")


def _invalid(message: str) -> ArchiveError:
    return ArchiveError("invalid_model", message)


def _unsupported(message: str) -> ArchiveError:
    return ArchiveError("unsupported_architecture", message)


def _check_labels(config: dict[str, Any]) -> None:
    for key in ("id2label", "label2id"):
        labels = config.get(key)
        if labels is None:
            continue
        if not isinstance(labels, dict) or len(labels) > MAX_LABELS:
            raise _invalid(f"config.json {key} must be an object of at most {MAX_LABELS} labels")
    id2label = config.get("id2label") or {}
    bad = next((k for k in id2label if not LABEL_ID_RE.fullmatch(k)), None)
    if bad is not None:
        raise _invalid(f"config.json id2label keys must be label numbers, not {bad[:40]!r}")


def _family(config: dict[str, Any]) -> Architecture:
    """The config's table entry; unsupported_architecture for any other model, a decoder, or
    `architectures` naming classes that are not the family's."""
    try:
        arch = architecture_for(config)
    except UnsupportedArchitecture as exc:
        raise _unsupported(exc.message) from exc
    if config.get("is_decoder") is True:
        raise _unsupported(
            f"config.json is_decoder is true: decoders are not supported; supported families: "
            f"{SUPPORTED}"
        )
    archs = config.get("architectures")
    if archs is not None:
        if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
            raise _invalid("config.json architectures must be a list of names")
        unknown = sorted(set(archs) - arch.classes)
        if unknown:
            raise _unsupported(
                f"unsupported architecture {unknown[0][:80]!r} for model_type "
                f"{config['model_type']!r}; supported: {', '.join(sorted(arch.classes))}"
            )
    return arch


def _check_int(key: str, value: object, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise _invalid(f"config.json {key} must be an integer in {low}..{high}, got {value!r}")


def _check_sizes(arch: Architecture, config: dict[str, Any]) -> None:
    keys = arch.keys
    for role, limit in SIZE_LIMITS.items():
        key = getattr(keys, role)
        _check_int(key, config.get(key), 1, limit)
    for key, (low, high) in OPTIONAL_LIMITS.items():
        if key in config:
            _check_int(key, config[key], low, high)
    c = arch.config(config)
    if c.hidden % c.heads:
        raise _invalid(f"config.json {keys.hidden} must be a multiple of {keys.heads}")
    if c.get("conv_kernel_size") and c.hidden % c.num("conv_groups"):
        raise _invalid(f"config.json {keys.hidden} must be a multiple of conv_groups")
    pos = config.get("pos_att_type")
    if pos is not None and not (
        isinstance(pos, str) or (isinstance(pos, list) and all(isinstance(p, str) for p in pos))
    ):
        raise _invalid("config.json pos_att_type must be a list of names or a '|'-joined string")
    kinds = config.get("layer_types")  # ModernBERT: each layer's attention
    if kinds is not None and not (
        isinstance(kinds, list) and len(kinds) == c.layers
        and all(k in LAYER_TYPES for k in kinds)
    ):  # fmt: skip
        raise _invalid(
            f"config.json layer_types must list one of {', '.join(sorted(LAYER_TYPES))} "
            f"for each of the {c.layers} layers"
        )
    pad = config.get("pad_token_id")
    if pad is not None and (type(pad) is not int or not 0 <= pad < c.vocab):
        raise _invalid(
            f"config.json pad_token_id must be a token id below {keys.vocab}, not {pad!r}"
        )


def checked_config(config: Any) -> tuple[dict[str, Any], Architecture]:
    if not isinstance(config, dict):
        raise _invalid("config.json must hold a JSON object")
    arch = _family(config)
    _check_sizes(arch, config)
    _check_labels(config)
    if config.get("add_cross_attention") and not config.get("is_decoder"):
        raise _invalid("config.json add_cross_attention needs is_decoder")
    return config, arch


def check_config(config: Any) -> dict[str, Any]:
    """The config of a supported encoder (app.architectures), with sizes in bounds; raises
    ArchiveError: unsupported_architecture (naming the supported families or classes) or
    invalid_model (naming the key)."""
    return checked_config(config)[0]
