"""The spec checks that need the model's config (the arithmetic is job_estimate's, checked
against the worker in tests/app/services/test_job_estimate.py)."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import Unprocessable
from app.schemas.job_spec import JobSpec
from app.services.spec_limits import BUILTIN_CONFIGS, check_spec, model_config

MINILM = BUILTIN_CONFIGS["minilm-l6"]


def spec(**fields: Any) -> JobSpec:
    return JobSpec.model_validate({"model": "minilm-l6", "dataset": {"name": "tweets"}, **fields})


def refused(job: JobSpec, config: dict[str, Any] | None = MINILM) -> str | None:
    with pytest.raises(Unprocessable) as info:
        check_spec(job, config)
    assert info.value.code == "invalid_spec"
    return info.value.field


def test_block4_takes_its_own_default_block_size() -> None:
    # block4's default B is 32 (divisible by 4); unstructured's 50 would not be.
    check_spec(spec(pruning={"method": "obert", "structure": "block4"}), MINILM)
    bad = spec(pruning={"method": "obert", "structure": "block4", "obert": {"block_size": 50}})
    assert refused(bad, None) == "pruning.obert.block_size"  # config-free: checked without one


def test_layers_and_length_against_the_config() -> None:
    assert refused(spec(layers={"keep": 7})) == "layers.keep"
    long = spec(dataset={"name": "tweets", "max_length": 256})
    assert refused(long, {**MINILM, "max_position_embeddings": 128}) == "dataset.max_length"
    check_spec(spec(layers={"keep": 6}, dataset={"name": "tweets", "max_length": 512}), MINILM)


def test_model_config_prefers_the_upload() -> None:
    assert model_config("minilm-l6", None) == MINILM
    assert model_config("minilm-l6", {"hidden_size": 8}) == {"hidden_size": 8}
    assert model_config("unknown", None) is None


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta", "mpnet"])
def test_families_numbering_positions_after_the_pad_id_hold_fewer_tokens(family: str) -> None:
    config = {**MINILM, "model_type": family, "max_position_embeddings": 130, "pad_token_id": 1}
    fits = spec(dataset={"name": "tweets", "max_length": 128})
    check_spec(fits, config)
    assert refused(spec(dataset={"name": "tweets", "max_length": 129}), config) == (
        "dataset.max_length"
    )
    check_spec(
        spec(dataset={"name": "tweets", "max_length": 130}), {**config, "model_type": "bert"}
    )
