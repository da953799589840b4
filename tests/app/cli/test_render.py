"""The one-line job summaries of `scalpel jobs`."""

from __future__ import annotations

from app.cli.render import spec_summary


def test_a_sparsity_method_shows_its_target_sparsity() -> None:
    spec = {"model": "minilm-l6", "dataset": {"name": "sst2"},
            "pruning": {"method": "obert", "sparsity": 0.8}}  # fmt: skip
    assert spec_summary(spec) == ("minilm-l6", "sst2", "obert 0.8")


def test_a_structured_job_shows_its_speedup_target_not_a_sparsity() -> None:
    spec = {"model": "minilm-l6", "dataset": {"name": "sst2"},
            "pruning": {"method": "structured", "sparsity": 0.5,
                        "structured": {"target_speedup": 3.0}}}  # fmt: skip
    assert spec_summary(spec) == ("minilm-l6", "sst2", "structured 3.0x")
    spec["pruning"] = {"method": "structured", "structured": None}
    assert spec_summary(spec)[2] == "structured 2.0x"
