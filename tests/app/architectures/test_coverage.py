"""check_coverage for every family: a full weight set passes, with or without the family's
prefix and with or without its task head; a missing, misshapen or integer parameter, half a
head or a head of the wrong width fails naming it; BERT's pooler may be absent, not halved.
The factory's weights, which these checks take as the full set, are transformers' own."""

from __future__ import annotations

from typing import Any

import pytest

from app.architectures import ARCHITECTURES, Architecture
from app.architectures.coverage import LayoutError, check_coverage
from app.catalog import TASKS
from app.services.safetensors_header import TensorInfo
from tests.factories.archives import FAMILIES, family_config, head_shapes

Infos = dict[str, TensorInfo]


def full(family: str, **overrides: Any) -> tuple[Architecture, dict[str, Any], Infos]:
    """A sequence classifier's tensors (base model under its prefix, BERT's pooler, head)."""
    arch = ARCHITECTURES[family]
    config = family_config(family, **overrides)
    c = arch.config(config)
    infos = {f"{arch.base_prefix}{k}": TensorInfo("F32", s)
             for k, s in arch.parameters(c).items()}  # fmt: skip
    infos |= {k: TensorInfo("F32", s) for k, s in head_shapes(family, c.hidden, 2).items()}
    return arch, config, infos


def refused(arch: Architecture, config: dict[str, Any], infos: Infos) -> str:
    with pytest.raises(LayoutError) as info:
        check_coverage(arch, config, infos)
    return info.value.message


def first_matrix(arch: Architecture, config: dict[str, Any], role: str = "ffn_out") -> str:
    c = arch.config(config)
    path = next(m.path for m in arch.layer_matrices(c) if m.role == role)
    return f"{arch.base_prefix}{arch.layers_path}.0.{path}.weight"


def head_prefixes(arch: Architecture) -> tuple[str, ...]:
    return tuple({p for t in TASKS for p in arch.task_heads(t)})


@pytest.mark.parametrize("family", FAMILIES)
def test_a_full_weight_set_passes_counting_every_parameter(family: str) -> None:
    arch, config, infos = full(family)
    got = check_coverage(arch, config, infos)
    assert got.num_parameters == sum(i.numel for i in infos.values())
    assert got.has_head and got.has_pooler == (family == "bert")


@pytest.mark.parametrize("family", FAMILIES)
def test_the_base_model_alone_passes_with_or_without_its_prefix(family: str) -> None:
    arch, config, infos = full(family)
    base = {k: v for k, v in infos.items() if not k.startswith(head_prefixes(arch))}
    assert len(base) < len(infos)
    got = check_coverage(arch, config, base)
    assert not got.has_head and got.num_parameters == sum(i.numel for i in base.values())
    bare = {k.removeprefix(arch.base_prefix): v for k, v in base.items()}
    assert check_coverage(arch, config, bare).num_parameters == got.num_parameters


@pytest.mark.parametrize("family", FAMILIES)
def test_a_missing_matrix_is_named(family: str) -> None:
    arch, config, infos = full(family)
    name = first_matrix(arch, config)
    shape = infos.pop(name).shape
    message = refused(arch, config, infos)
    implied = len(arch.parameters(arch.config(config))) + len(arch.optional_pooler)
    assert f"1 of the {implied} tensors the config implies are missing" in message
    assert f"{name} [{shape[0]}, {shape[1]}]" in message
    assert f"the {arch.display} encoder has" in message


@pytest.mark.parametrize("family", FAMILIES)
def test_a_misshapen_matrix_is_named(family: str) -> None:
    arch, config, infos = full(family)
    name = first_matrix(arch, config, "query" if family != "modernbert" else "qkv")
    rows, cols = infos[name].shape
    infos[name] = TensorInfo("F32", (rows, cols + 1))
    assert f"{name} has shape [{rows}, {cols + 1}], not [{rows}, {cols}]" in refused(
        arch, config, infos
    )


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", ["I64", "U8", "F64"])
def test_a_non_float_parameter_is_named(family: str, dtype: str) -> None:
    arch, config, infos = full(family)
    name = first_matrix(arch, config, "attention_output")
    infos[name] = TensorInfo(dtype, infos[name].shape)
    assert f"{name} has dtype {dtype}" in refused(arch, config, infos)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_head_of_the_wrong_width_or_half_a_head_is_named(family: str) -> None:
    arch, config, infos = full(family)
    output = arch.head_output("sequence_classification")
    infos[f"{output}.weight"] = TensorInfo("F32", (2, 9))
    message = refused(arch, config, infos)
    assert f"the task head {output}.weight [2, 9] / {output}.bias [2]" in message
    assert "does not fit hidden size 8" in message
    del infos[f"{output}.weight"]
    assert f"the task head has only {output}.bias" in refused(arch, config, infos)


def test_a_deberta_head_may_be_as_wide_as_its_pooler() -> None:
    arch, config, infos = full("deberta-v2", pooler_hidden_size=12)
    infos |= {"pooler.dense.weight": TensorInfo("F32", (12, 8)),
              "pooler.dense.bias": TensorInfo("F32", (12,)),
              "classifier.weight": TensorInfo("F32", (2, 12))}  # fmt: skip
    assert check_coverage(arch, config, infos).has_head
    infos["classifier.weight"] = TensorInfo("F32", (2, 10))
    assert "does not fit hidden size 8 or 12" in refused(arch, config, infos)


@pytest.mark.parametrize(
    ("family", "overrides", "named"),
    [("modernbert", {"norm_bias": True, "attention_bias": True, "mlp_bias": True},
      "model.layers.0.attn.Wqkv.bias [24]"),
     ("deberta-v2", {"share_att_key": False, "pos_att_type": "p2c|c2p", "conv_kernel_size": 3},
      "deberta.encoder.layer.0.attention.self.pos_key_proj.weight [8, 8]"),
     ("electra", {"embedding_size": 8},
      "electra.embeddings.word_embeddings.weight has shape [8, 4], not [8, 8]")],
)  # fmt: skip
def test_options_that_change_the_parameter_set_are_held_to_it(
    family: str, overrides: dict[str, Any], named: str
) -> None:
    arch, config, infos = full(family, **overrides)
    check_coverage(arch, config, infos)
    _, _, default_infos = full(family)
    assert named in refused(arch, config, default_infos)


def test_bert_may_lack_its_pooler_but_not_half_of_it() -> None:
    arch, config, infos = full("bert")
    del infos["bert.pooler.dense.weight"], infos["bert.pooler.dense.bias"]
    assert not check_coverage(arch, config, infos).has_pooler
    infos["bert.pooler.dense.weight"] = TensorInfo("F32", (8, 8))
    assert "bert.pooler.dense.bias [8]" in refused(arch, config, infos)


def test_the_factory_weights_are_transformers_own() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    for family in FAMILIES:
        _, config, infos = full(family)
        cls = getattr(transformers, config["architectures"][0])
        torch.manual_seed(0)
        model = cls(transformers.AutoConfig.for_model(**config))
        built = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert built == {k: i.shape for k, i in infos.items()}, family
