"""The architecture table against transformers: every family's parameter set, for the config
options that change it, is the real base model's; its defaults are its config class's; its
class names exist; its prunable matrices are every Linear of every layer, with the shapes and
biases the table says; its task heads are where the table puts them."""

from __future__ import annotations

from typing import Any

import pytest

from app.architectures import ARCHITECTURES, Architecture, architecture_for
from app.catalog import TASKS
from tests.factories.encoder_configs import FAMILIES, tiny_config

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

# (family, overrides of tiny_config): the options that change a family's parameter set.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("bert", {}),
    ("bert", {"type_vocab_size": 1, "max_position_embeddings": 40, "num_hidden_layers": 3}),
    ("roberta", {}),
    ("xlm-roberta", {"vocab_size": 250}),
    ("electra", {}),  # embedding_size 32 != hidden 64: embeddings_project
    ("electra", {"embedding_size": 64}),
    ("distilbert", {}),
    ("distilbert", {"sinusoidal_pos_embds": True}),
    ("deberta-v2", {}),  # v3: relative attention, shared keys, buckets, norm_rel_ebd
    ("deberta-v2", {"relative_attention": False, "position_biased_input": True,
                    "type_vocab_size": 2, "norm_rel_ebd": "none"}),
    # v2-xlarge: a convolution, narrow embeddings, separate position projections
    ("deberta-v2", {"conv_kernel_size": 3, "embedding_size": 32, "share_att_key": False,
                    "pos_att_type": "p2c|c2p", "position_buckets": -1,
                    "max_relative_positions": 16}),
    ("deberta-v2", {"share_att_key": False, "pos_att_type": ["c2p"], "conv_kernel_size": 3,
                    "conv_groups": 2, "norm_rel_ebd": "none", "position_buckets": -1,
                    "max_relative_positions": -1}),
    ("mpnet", {}),
    ("mpnet", {"relative_attention_num_buckets": 16}),
    ("modernbert", {}),
    ("modernbert", {"norm_bias": True, "attention_bias": True, "mlp_bias": True}),
    ("modernbert", {"attention_bias": True, "num_hidden_layers": 3}),
]  # fmt: skip
IDS = [f"{f}-{i}" for i, (f, _) in enumerate(CASES)]
TASK_CLASSES = {
    "sequence_classification": "ForSequenceClassification",
    "regression": "ForSequenceClassification",
    "token_classification": "ForTokenClassification",
    "question_answering": "ForQuestionAnswering",
}


def shapes(module: Any) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def base_model(config: Any) -> Any:
    torch.manual_seed(0)
    return transformers.AutoModel.from_config(config)


@pytest.mark.parametrize(("family", "overrides"), CASES, ids=IDS)
def test_parameters_are_the_base_models(family: str, overrides: dict[str, Any]) -> None:
    config = tiny_config(family, **overrides)
    built = {k: s for k, s in shapes(base_model(config)).items() if not k.startswith("pooler.")}
    arch = ARCHITECTURES[family]
    assert architecture_for(config.to_dict()) is arch
    assert arch.parameters(arch.config(config.to_dict())) == built
    # config.json as save_pretrained writes it: only what differs from the defaults
    diff = {**config.to_diff_dict(), "model_type": config.model_type}
    assert arch.parameters(arch.config(diff)) == built


# Sizes alone, and DeBERTa's relative attention and convolution without their other keys:
# the keys its modeling code reads with a default (position_buckets, share_att_key,
# conv_groups) that DebertaV2Config does not hold.
ALONE = [(f, {}) for f in FAMILIES] + [
    ("deberta-v2", {"relative_attention": True, "pos_att_type": ["p2c", "c2p"]}),
    ("deberta-v2", {"relative_attention": True, "pos_att_type": "c2p", "conv_kernel_size": 3}),
]


@pytest.mark.parametrize(("family", "extra"), ALONE, ids=[f"{f}-{i}" for i, (f, _) in
                                                         enumerate(ALONE)])  # fmt: skip
def test_a_config_of_sizes_alone_reads_the_config_class_defaults(
    family: str, extra: dict[str, Any]
) -> None:
    arch = ARCHITECTURES[family]
    keys = arch.keys
    # (ModernBERT's default special token ids are 50281-50283)
    sizes = {keys.hidden: 32, keys.layers: 2, keys.heads: 2, keys.ffn: 48, keys.vocab: 50_400}
    config = transformers.AutoConfig.for_model(arch.model_types[0], **sizes, **extra)
    built = {k: s for k, s in shapes(base_model(config)).items() if not k.startswith("pooler.")}
    raw = {"model_type": arch.model_types[0], **sizes, **extra}
    assert arch.parameters(arch.config(raw)) == built


@pytest.mark.parametrize("family", FAMILIES)
def test_defaults_and_keys_are_the_config_classs(family: str) -> None:
    """The defaults the config class holds are the table's (those it does not hold are the
    modeling code's getattr defaults, checked above by building models without them)."""
    arch = ARCHITECTURES[family]
    config = transformers.AutoConfig.for_model(arch.model_types[0])
    saved = config.to_dict()
    held = {k: v for k, v in arch.defaults.items() if k in saved}
    assert held == {k: saved[k] for k in held}
    assert held, family
    for role in ("hidden", "layers", "heads", "ffn", "vocab", "positions"):
        key = getattr(arch.keys, role)
        assert isinstance(saved.get(key), int), f"{family}: {key} ({role}) is not saved"


@pytest.mark.parametrize("family", FAMILIES)
def test_the_class_names_exist(family: str) -> None:
    arch = ARCHITECTURES[family]
    missing = sorted(c for c in arch.classes if not hasattr(transformers, c))
    assert not missing
    for cls in arch.classes:
        assert getattr(transformers, cls).config_class.model_type in arch.model_types


def linears(module: Any) -> set[str]:
    return {n for n, m in module.named_modules() if isinstance(m, torch.nn.Linear)}


@pytest.mark.parametrize(("family", "overrides"), CASES, ids=IDS)
def test_layer_matrices_are_every_linear_of_every_layer(
    family: str, overrides: dict[str, Any]
) -> None:
    arch = ARCHITECTURES[family]
    config = tiny_config(family, **overrides)
    c = arch.config(config.to_dict())
    layers = base_model(config).get_submodule(arch.layers_path)
    assert len(layers) == c.layers
    matrices = arch.layer_matrices(c)
    for i, layer in enumerate(layers):
        assert linears(layer) == {m.path for m in matrices}, i
        for m in matrices:
            linear = layer.get_submodule(m.path)
            assert tuple(linear.weight.shape) == m.shape(c, arch.ffn.gated), (i, m.path)
            assert (linear.bias is not None) == m.has_bias(c), (i, m.path)
        heads, ffn = arch.attention, arch.ffn
        paths = [heads.output, heads.query, heads.key, heads.value, heads.qkv, ffn.fc1, ffn.fc2]
        for path in filter(None, paths):
            assert isinstance(layer.get_submodule(path), torch.nn.Linear), path
        layer.get_submodule(ffn.activation)


def task_model(arch: Architecture, task: str, config: Any) -> Any:
    cls = getattr(transformers, f"{arch.class_prefix}{TASK_CLASSES[task]}")
    torch.manual_seed(0)
    return cls(config)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("task", TASKS)
def test_task_heads_are_where_the_table_says(family: str, task: Any) -> None:
    arch = ARCHITECTURES[family]
    labels = {"regression": 1, "question_answering": 2}.get(task, 3)
    config = tiny_config(family, num_labels=labels)
    model = task_model(arch, task, config)
    names = set(shapes(model))
    base = {n for n in names if n.startswith(arch.base_prefix)}
    head = names - base
    assert base, f"no {arch.base_prefix}* parameters"
    assert head and all(n.startswith(arch.task_heads(task)) for n in head), sorted(head)
    output = model.get_submodule(arch.head_output(task))
    assert isinstance(output, torch.nn.Linear)
    assert output.out_features == labels
    # the base model's parameters under the prefix are the table's (with the pooler, if any)
    pooler = set(arch.optional_pooler)
    stripped = {n.removeprefix(arch.base_prefix) for n in base} - pooler
    assert stripped == set(arch.parameters(arch.config(config.to_dict())))
