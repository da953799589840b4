"""Each family's base-model parameters by name and shape, as transformers 5 builds them from
a config (checked against the real classes for several configs per family in
tests/app/architectures/test_families.py), and the prunable matrices of each family's layer."""

from __future__ import annotations

from app.architectures.layout import Config, Matrix, Shape, matrix_parameters, norm


def bert_layers(matrices: tuple[Matrix, ...], c: Config, path: str) -> dict[str, Shape]:
    out: dict[str, Shape] = {}
    for i in range(c.layers):
        layer = f"{path}.{i}."
        out |= matrix_parameters(matrices, c, layer)
        out |= norm(f"{layer}attention.output.LayerNorm", c.hidden)
        out |= norm(f"{layer}output.LayerNorm", c.hidden)
    return out


def bert_embeddings(c: Config, width: int) -> dict[str, Shape]:
    out: dict[str, Shape] = {
        "embeddings.word_embeddings.weight": (c.vocab, width),
        "embeddings.position_embeddings.weight": (c.positions, width),
    }
    if c.num("type_vocab_size") > 0:
        out["embeddings.token_type_embeddings.weight"] = (c.num("type_vocab_size"), width)
    return out | norm("embeddings.LayerNorm", width)


def bert_parameters(c: Config) -> dict[str, Shape]:
    return bert_embeddings(c, c.hidden) | bert_layers(BERT_MATRICES, c, "encoder.layer")


def roberta_parameters(c: Config) -> dict[str, Shape]:
    return bert_embeddings(c, c.hidden) | bert_layers(BERT_MATRICES, c, "encoder.layer")


def electra_parameters(c: Config) -> dict[str, Shape]:
    width = c.num("embedding_size")
    out = bert_embeddings(c, width)
    if width != c.hidden:
        out |= {
            "embeddings_project.weight": (c.hidden, width),
            "embeddings_project.bias": (c.hidden,),
        }
    return out | bert_layers(BERT_MATRICES, c, "encoder.layer")


def distilbert_parameters(c: Config) -> dict[str, Shape]:
    out: dict[str, Shape] = {
        "embeddings.word_embeddings.weight": (c.vocab, c.hidden),
        "embeddings.position_embeddings.weight": (c.positions, c.hidden),
        **norm("embeddings.LayerNorm", c.hidden),
    }
    for i in range(c.layers):
        layer = f"transformer.layer.{i}."
        out |= matrix_parameters(DISTILBERT_MATRICES, c, layer)
        out |= norm(f"{layer}sa_layer_norm", c.hidden) | norm(f"{layer}output_layer_norm", c.hidden)
    return out


def pos_att_type(c: Config) -> set[str]:
    value = c.get("pos_att_type") or []
    if isinstance(value, str):
        value = value.lower().split("|")
    return {str(v).strip() for v in value}


def deberta_relative(c: Config) -> bool:
    return c.flag("relative_attention")


def deberta_pos_key(c: Config) -> bool:
    return deberta_relative(c) and not c.flag("share_att_key") and "c2p" in pos_att_type(c)


def deberta_pos_query(c: Config) -> bool:
    return deberta_relative(c) and not c.flag("share_att_key") and "p2c" in pos_att_type(c)


def deberta_parameters(c: Config) -> dict[str, Shape]:
    h = c.hidden
    width = c.num("embedding_size") if c.get("embedding_size") is not None else h
    out: dict[str, Shape] = {"embeddings.word_embeddings.weight": (c.vocab, width)}
    if c.flag("position_biased_input"):
        out["embeddings.position_embeddings.weight"] = (c.positions, width)
    if c.num("type_vocab_size") > 0:
        out["embeddings.token_type_embeddings.weight"] = (c.num("type_vocab_size"), width)
    if width != h:
        out["embeddings.embed_proj.weight"] = (h, width)
    out |= norm("embeddings.LayerNorm", h)
    out |= bert_layers(DEBERTA_V2_MATRICES, c, "encoder.layer")
    if deberta_relative(c):
        max_rel = c.num("max_relative_positions")
        size = c.num("position_buckets") if c.num("position_buckets") > 0 else (
            max_rel if max_rel >= 1 else c.positions
        )  # fmt: skip
        out["encoder.rel_embeddings.weight"] = (2 * size, h)
    if "layer_norm" in {x.strip() for x in str(c.get("norm_rel_ebd")).lower().split("|")}:
        out |= norm("encoder.LayerNorm", h)
    kernel = c.num("conv_kernel_size")
    if kernel > 0:
        out["encoder.conv.conv.weight"] = (h, h // c.num("conv_groups"), kernel)
        out["encoder.conv.conv.bias"] = (h,)
        out |= norm("encoder.conv.LayerNorm", h)
    return out


def mpnet_parameters(c: Config) -> dict[str, Shape]:
    h = c.hidden
    out: dict[str, Shape] = {
        "embeddings.word_embeddings.weight": (c.vocab, h),
        "embeddings.position_embeddings.weight": (c.positions, h),
        **norm("embeddings.LayerNorm", h),
        "encoder.relative_attention_bias.weight": (
            c.num("relative_attention_num_buckets"), c.heads
        ),
    }  # fmt: skip
    for i in range(c.layers):
        layer = f"encoder.layer.{i}."
        out |= matrix_parameters(MPNET_MATRICES, c, layer)
        out |= norm(f"{layer}attention.LayerNorm", h) | norm(f"{layer}output.LayerNorm", h)
    return out


def modernbert_parameters(c: Config) -> dict[str, Shape]:
    h, bias = c.hidden, c.flag("norm_bias")
    out: dict[str, Shape] = {"embeddings.tok_embeddings.weight": (c.vocab, h)}
    out |= norm("embeddings.norm", h, bias)
    for i in range(c.layers):
        layer = f"layers.{i}."
        out |= matrix_parameters(MODERNBERT_MATRICES, c, layer, gated=True)
        if i > 0:  # the first layer's attention norm is the identity
            out |= norm(f"{layer}attn_norm", h, bias)
        out |= norm(f"{layer}mlp_norm", h, bias)
    return out | norm("final_norm", h, bias)


# BERT's layer, shared by RoBERTa, XLM-R and ELECTRA.
BERT_MATRICES = (
    Matrix("attention.self.query", "query"),
    Matrix("attention.self.key", "key"),
    Matrix("attention.self.value", "value"),
    Matrix("attention.output.dense", "attention_output"),
    Matrix("intermediate.dense", "ffn_in"),
    Matrix("output.dense", "ffn_out"),
)
DISTILBERT_MATRICES = (
    Matrix("attention.q_lin", "query"),
    Matrix("attention.k_lin", "key"),
    Matrix("attention.v_lin", "value"),
    Matrix("attention.out_lin", "attention_output"),
    Matrix("ffn.lin1", "ffn_in"),
    Matrix("ffn.lin2", "ffn_out"),
)
DEBERTA_V2_MATRICES = (
    Matrix("attention.self.query_proj", "query"),
    Matrix("attention.self.key_proj", "key"),
    Matrix("attention.self.value_proj", "value"),
    Matrix("attention.self.pos_key_proj", "pos_key", present=deberta_pos_key),
    Matrix("attention.self.pos_query_proj", "pos_query", present=deberta_pos_query),
    Matrix("attention.output.dense", "attention_output"),
    Matrix("intermediate.dense", "ffn_in"),
    Matrix("output.dense", "ffn_out"),
)
MPNET_MATRICES = (
    Matrix("attention.attn.q", "query"),
    Matrix("attention.attn.k", "key"),
    Matrix("attention.attn.v", "value"),
    Matrix("attention.attn.o", "attention_output"),
    Matrix("intermediate.dense", "ffn_in"),
    Matrix("output.dense", "ffn_out"),
)
MODERNBERT_MATRICES = (
    Matrix("attn.Wqkv", "qkv", bias="attention_bias"),
    Matrix("attn.Wo", "attention_output", bias="attention_bias"),
    Matrix("mlp.Wi", "ffn_in", bias="mlp_bias"),
    Matrix("mlp.Wo", "ffn_out", bias="mlp_bias"),
)
