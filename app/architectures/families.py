"""The architecture table: one entry per supported encoder family.

Each entry's `parameters` is its base model's parameter set (app.architectures.parameters).
A new family is one entry here, its parameter function there, and its tiny config in
tests/factories/encoder_configs.py (with its tokenizer kind in tests/factories/encoders.py).
"""

from __future__ import annotations

from app.architectures.layout import Architecture, AttentionHeads, ConfigKeys, FeedForward
from app.architectures.parameters import (
    BERT_MATRICES,
    DEBERTA_V2_MATRICES,
    DISTILBERT_MATRICES,
    MODERNBERT_MATRICES,
    MPNET_MATRICES,
    bert_parameters,
    deberta_parameters,
    distilbert_parameters,
    electra_parameters,
    modernbert_parameters,
    mpnet_parameters,
    roberta_parameters,
)

WORDPIECE = ("vocab.txt",)
BYTE_BPE = ("vocab.json", "merges.txt")
FAST = ("tokenizer.json",)

BERT_HEADS = AttentionHeads(
    "attention.output.dense",
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    module="attention.self",
    count="num_attention_heads",
    width="all_head_size",
)
BERT_FFN = FeedForward("intermediate.dense", "output.dense", "intermediate.intermediate_act_fn")


BERT = Architecture(
    family="bert",
    display="BERT (MiniLM included)",
    model_types=("bert",),
    class_prefix="Bert",
    base_prefix="bert.",
    layers_path="encoder.layer",
    matrices=BERT_MATRICES,
    attention=BERT_HEADS,
    ffn=BERT_FFN,
    parameters=bert_parameters,
    defaults={"max_position_embeddings": 512, "type_vocab_size": 2},
    optional_pooler=("pooler.dense.weight", "pooler.dense.bias"),
    tokenizer_files=(FAST, WORDPIECE),
    extra_classes=("ForPreTraining", "ForNextSentencePrediction", "LMHeadModel"),
)
ROBERTA = Architecture(
    family="roberta",
    display="RoBERTa",
    model_types=("roberta",),
    class_prefix="Roberta",
    base_prefix="roberta.",
    layers_path="encoder.layer",
    matrices=BERT_MATRICES,
    attention=BERT_HEADS,
    ffn=BERT_FFN,
    parameters=roberta_parameters,
    defaults={"max_position_embeddings": 512, "type_vocab_size": 2},
    head_outputs={
        "sequence_classification": "classifier.out_proj",
        "regression": "classifier.out_proj",
    },
    tokenizer_files=(FAST, BYTE_BPE),
    positions_after_pad=True,
)
XLM_ROBERTA = Architecture(
    family="xlm-roberta",
    display="XLM-RoBERTa",
    model_types=("xlm-roberta",),
    class_prefix="XLMRoberta",
    base_prefix="roberta.",
    layers_path="encoder.layer",
    matrices=BERT_MATRICES,
    attention=BERT_HEADS,
    ffn=BERT_FFN,
    parameters=roberta_parameters,
    defaults=ROBERTA.defaults,
    head_outputs=ROBERTA.head_outputs,
    tokenizer_files=(FAST, ("sentencepiece.bpe.model",)),
    positions_after_pad=True,
)
ELECTRA = Architecture(
    family="electra",
    display="ELECTRA (discriminator)",
    model_types=("electra",),
    class_prefix="Electra",
    base_prefix="electra.",
    layers_path="encoder.layer",
    matrices=BERT_MATRICES,
    attention=BERT_HEADS,
    ffn=BERT_FFN,
    parameters=electra_parameters,
    defaults={"max_position_embeddings": 512, "type_vocab_size": 2, "embedding_size": 128},
    head_outputs=ROBERTA.head_outputs,
    tokenizer_files=(FAST, WORDPIECE),
    extra_classes=("ForPreTraining",),
)
DISTILBERT = Architecture(
    family="distilbert",
    display="DistilBERT",
    model_types=("distilbert",),
    class_prefix="DistilBert",
    base_prefix="distilbert.",
    layers_path="transformer.layer",
    matrices=DISTILBERT_MATRICES,
    attention=AttentionHeads(
        "attention.out_lin",
        "attention.q_lin",
        "attention.k_lin",
        "attention.v_lin",
        module="attention",
        count="n_heads",  # its `dim` is the model width, which the forward does not read
    ),
    ffn=FeedForward("ffn.lin1", "ffn.lin2", "ffn.activation"),
    parameters=distilbert_parameters,
    keys=ConfigKeys(hidden="dim", layers="n_layers", heads="n_heads", ffn="hidden_dim"),
    defaults={"max_position_embeddings": 512},
    heads={
        "sequence_classification": ("pre_classifier.", "classifier."),
        "regression": ("pre_classifier.", "classifier."),
        "token_classification": ("classifier.",),
        "question_answering": ("qa_outputs.",),
    },
    tokenizer_files=(FAST, WORDPIECE),
)
DEBERTA_V2 = Architecture(
    family="deberta-v2",
    display="DeBERTa-v2/v3",
    model_types=("deberta-v2",),
    class_prefix="DebertaV2",
    base_prefix="deberta.",
    layers_path="encoder.layer",
    matrices=DEBERTA_V2_MATRICES,
    attention=AttentionHeads(
        "attention.output.dense",
        "attention.self.query_proj",
        "attention.self.key_proj",
        "attention.self.value_proj",
        module="attention.self",
        count="num_attention_heads",
        width="all_head_size",
    ),
    ffn=BERT_FFN,
    parameters=deberta_parameters,
    defaults={
        "max_position_embeddings": 512,
        "type_vocab_size": 0,
        "position_biased_input": True,
        "relative_attention": False,
        "max_relative_positions": -1,
        "position_buckets": -1,
        "share_att_key": False,
        "norm_rel_ebd": "none",
        "conv_kernel_size": 0,
        "conv_groups": 1,
    },
    heads={
        "sequence_classification": ("pooler.", "classifier."),
        "regression": ("pooler.", "classifier."),
        "token_classification": ("classifier.",),
        "question_answering": ("qa_outputs.",),
    },
    tokenizer_files=(FAST, ("spm.model",)),
)
MPNET = Architecture(
    family="mpnet",
    display="MPNet",
    model_types=("mpnet",),
    class_prefix="MPNet",
    base_prefix="mpnet.",
    layers_path="encoder.layer",
    matrices=MPNET_MATRICES,
    attention=AttentionHeads(
        "attention.attn.o",
        "attention.attn.q",
        "attention.attn.k",
        "attention.attn.v",
        module="attention.attn",
        count="num_attention_heads",
        width="all_head_size",
        shared_bias="position_bias",  # the encoder's relative_attention_bias, all heads
    ),
    ffn=BERT_FFN,
    parameters=mpnet_parameters,
    defaults={"max_position_embeddings": 512, "relative_attention_num_buckets": 32},
    head_outputs=ROBERTA.head_outputs,
    tokenizer_files=(FAST, WORDPIECE),
    positions_after_pad=True,
)
_MODERNBERT_HEAD = ("head.", "classifier.")
MODERNBERT = Architecture(
    family="modernbert",
    display="ModernBERT",
    model_types=("modernbert",),
    class_prefix="ModernBert",
    base_prefix="model.",
    layers_path="layers",
    matrices=MODERNBERT_MATRICES,
    attention=AttentionHeads("attn.Wo", qkv="attn.Wqkv", module="attn"),  # heads: Wqkv rows
    ffn=FeedForward("mlp.Wi", "mlp.Wo", "mlp.act", gated=True),
    parameters=modernbert_parameters,
    defaults={
        "max_position_embeddings": 8192,
        "norm_bias": False,
        "attention_bias": False,
        "mlp_bias": False,
    },
    per_layer_keys=("layer_types",),
    heads={
        t: _MODERNBERT_HEAD
        for t in (
            "sequence_classification",
            "regression",
            "token_classification",
            "question_answering",
        )
    },
    head_outputs={"question_answering": "classifier"},
    tokenizer_files=(FAST,),
)

ARCHITECTURES: dict[str, Architecture] = {
    a.family: a
    for a in (BERT, ROBERTA, XLM_ROBERTA, DISTILBERT, ELECTRA, DEBERTA_V2, MPNET, MODERNBERT)
}
