"""check_config and inspect_archive for every family of the architecture table: what
save_pretrained writes is accepted (config, weights, counted parameters), read with the
family's keys and bounds; other architectures and decoders are unsupported_architecture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.architectures import SUPPORTED
from app.services.archives import ArchiveError
from app.services.model_inspect import check_config, inspect_archive
from tests.app.architectures.test_families import CASES, IDS
from tests.factories.archives import family_config, tokenizer_files, zip_bytes
from tests.factories.encoder_configs import FAMILIES, tiny_config

LIMITS = {"max_members": 64, "max_total_bytes": 100_000_000}


def refused(config: dict[str, Any], code: str = "invalid_model") -> str:
    with pytest.raises(ArchiveError) as info:
        check_config(config)
    assert info.value.code == code, info.value.message
    return info.value.message


@pytest.mark.parametrize(("family", "overrides"), CASES, ids=IDS)
def test_saved_configs_of_every_family_are_accepted(family: str, overrides: dict[str, Any]) -> None:
    pytest.importorskip("transformers")
    config = tiny_config(family, **overrides)
    saved = json.loads(config.to_json_string(use_diff=True))
    assert check_config(saved) is saved


@pytest.mark.parametrize("family", FAMILIES)
def test_a_saved_model_of_every_family_is_accepted_counting_its_parameters(
    tmp_path: Path, family: str
) -> None:
    pytest.importorskip("torch")
    import transformers

    config = tiny_config(family, num_labels=3)
    model = transformers.AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(tmp_path / "m")
    files = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}
    path = tmp_path / "m.zip"
    path.write_bytes(zip_bytes({**files, **tokenizer_files("json")}, prefix="m/"))
    info = inspect_archive(path, "zip", **LIMITS)
    assert info.architecture == type(model).__name__
    assert info.num_labels == 3
    assert info.num_parameters == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "config",
    [{"model_type": "albert", "hidden_size": 8}, {"model_type": "gpt2", "n_embd": 8},
     {"model_type": "t5"}, {"hidden_size": 8}, {"model_type": ["bert"]}],
    ids=["albert", "gpt2", "t5", "none", "list"],
)  # fmt: skip
def test_other_model_types_are_unsupported_naming_the_families(config: dict[str, Any]) -> None:
    message = refused(config, "unsupported_architecture")
    assert "is not supported; supported families: " + SUPPORTED in message


def test_decoders_and_other_classes_are_unsupported() -> None:
    assert "decoders are not supported" in refused(
        family_config("roberta", is_decoder=True), "unsupported_architecture"
    )
    message = refused(
        family_config("distilbert", architectures=["DistilBertModel", "BertModel"]),
        "unsupported_architecture",
    )
    assert "unsupported architecture 'BertModel' for model_type 'distilbert'" in message
    assert "DistilBertForQuestionAnswering" in message


@pytest.mark.parametrize(
    ("family", "changes", "part"),
    [("distilbert", {"n_heads": None}, "n_heads must be an integer in 1..64, got None"),
     ("distilbert", {"dim": 8192}, "dim must be an integer in 1..4096"),
     ("distilbert", {"n_heads": 3}, "dim must be a multiple of n_heads"),
     ("modernbert", {"intermediate_size": 0}, "intermediate_size must be an integer in 1..16384"),
     ("xlm-roberta", {"vocab_size": 262_145}, "vocab_size must be an integer in 1..262144"),
     ("bert", {"type_vocab_size": -1}, "type_vocab_size must be an integer in 0..16"),
     ("electra", {"embedding_size": 2.5}, "embedding_size must be an integer"),
     ("deberta-v2", {"position_buckets": -2}, "position_buckets must be an integer in -1..8192"),
     ("deberta-v2", {"max_position_embeddings": None}, "max_position_embeddings"),
     ("deberta-v2", {"pos_att_type": {"p2c": 1}}, "pos_att_type must be a list"),
     ("mpnet", {"pad_token_id": 8}, "pad_token_id must be a token id below vocab_size"),
     ("modernbert", {"global_attn_every_n_layers": 0}, "global_attn_every_n_layers must be"),
     ("modernbert", {"local_attention": 1}, "local_attention must be an integer in 2..8192"),
     ("modernbert", {"layer_types": ["full_attention"]}, "layer_types must list one of"),
     ("modernbert", {"layer_types": ["full_attention", "global"]}, "for each of the 2 layers")],
)  # fmt: skip
def test_sizes_are_read_and_bounded_with_the_familys_keys(
    family: str, changes: dict[str, Any], part: str
) -> None:
    assert part in refused({**family_config(family), **changes})


def test_the_bounds_admit_xlm_roberta_and_deberta_v3() -> None:
    check_config(family_config("xlm-roberta", vocab_size=250_002))
    check_config(family_config("xlm-roberta", vocab_size=262_144))
    check_config(family_config("deberta-v2", type_vocab_size=0, max_relative_positions=-1))
