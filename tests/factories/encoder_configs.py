"""Tiny random configs of every family in the architecture table (hidden 64, 2 layers, 4
heads), with the options that change a family's parameter set as overrides."""

from __future__ import annotations

from typing import Any

TINY = {
    "vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 96, "max_position_embeddings": 128,
}  # fmt: skip
# What each family's config needs beyond TINY (DeBERTa-v3: relative attention, shared keys)
FAMILY_OPTIONS: dict[str, dict[str, Any]] = {
    "bert": {},
    "roberta": {"type_vocab_size": 1, "pad_token_id": 1},
    "xlm-roberta": {"type_vocab_size": 1, "pad_token_id": 1},
    "electra": {"embedding_size": 32},
    "distilbert": {},
    "deberta-v2": {
        "relative_attention": True, "pos_att_type": ["p2c", "c2p"],
        "position_biased_input": False, "share_att_key": True, "norm_rel_ebd": "layer_norm",
        "position_buckets": 32, "max_relative_positions": -1, "type_vocab_size": 0,
    },
    "mpnet": {"pad_token_id": 1},
    "modernbert": {
        "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "cls_token_id": 1,
        "sep_token_id": 2, "global_attn_every_n_layers": 2, "local_attention": 16,
    },
}  # fmt: skip
FAMILIES = tuple(FAMILY_OPTIONS)


def tiny_config(family: str, **overrides: Any) -> Any:
    """A transformers config of `family` (dropout off, so outputs are deterministic)."""
    import transformers

    from app.architectures import ARCHITECTURES

    arch = ARCHITECTURES[family]
    values: dict[str, Any] = {**TINY, **FAMILY_OPTIONS[family], **overrides}
    keys = arch.keys  # DistilBERT says dim, n_layers, n_heads, hidden_dim
    renamed = {"hidden_size": keys.hidden, "num_hidden_layers": keys.layers,
               "num_attention_heads": keys.heads, "intermediate_size": keys.ffn}  # fmt: skip
    values = {renamed.get(k, k): v for k, v in values.items()}
    if family == "distilbert":
        values |= {"dropout": 0.0, "attention_dropout": 0.0}
    elif family == "modernbert":
        values |= {"attention_dropout": 0.0, "mlp_dropout": 0.0, "embedding_dropout": 0.0}
    else:
        values |= {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    return transformers.AutoConfig.for_model(arch.model_types[0], **values)
