"""The API's Fisher-state estimate: the worker's arithmetic, without torch in app/."""

from __future__ import annotations

import pytest

from app.schemas.job_spec import JobSpec
from app.services.spec_limits import (
    BUILTIN_CONFIGS,
    encoder_linear_sizes,
    fisher_estimate,
    fisher_state_bytes,
)

MINILM = BUILTIN_CONFIGS["minilm-l6"]


def spec(**pruning: object) -> JobSpec:
    return JobSpec.model_validate(
        {"model": "minilm-l6", "dataset": {"name": "tweets"}, "pruning": pruning}
    )


def test_encoder_linear_sizes_follow_the_config() -> None:
    sizes = encoder_linear_sizes(MINILM)
    assert len(sizes) == 6 * 6
    assert sum(sizes) == 6 * (4 * 384 * 384 + 2 * 384 * 1536)
    assert len(encoder_linear_sizes(MINILM, keep_layers=2)) == 12
    # Missing keys fall back to BERT-base's shape (FFN 4 x hidden).
    assert (
        sum(encoder_linear_sizes({"hidden_size": 8, "num_hidden_layers": 1})) == 4 * 64 + 2 * 8 * 32
    )


@pytest.mark.parametrize(("n", "block"), [(147_456, 50), (589_824, 32), (7, 4), (1, 512)])
def test_state_bytes_match_the_worker(n: int, block: int) -> None:
    torch = pytest.importorskip("torch")
    from worker.compression.fisher import BlockFisherInverse

    assert fisher_state_bytes(n, block) == BlockFisherInverse.state_bytes(n, block, torch.float32)


def test_estimate_uses_the_default_block_size_per_structure() -> None:
    n = encoder_linear_sizes(MINILM)
    assert fisher_estimate(spec(method="obert"), MINILM) == sum(
        fisher_state_bytes(x, 50) for x in n
    )
    block4 = spec(method="obert", structure="block4")
    assert fisher_estimate(block4, MINILM) == sum(fisher_state_bytes(x, 32) for x in n)
    assert fisher_estimate(spec(method="magnitude"), MINILM) == 0
