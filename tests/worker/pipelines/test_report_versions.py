"""The report records the exact resolved spec and the versions that produced it."""

from __future__ import annotations

from importlib.metadata import version

import torch
import transformers

from app.schemas.job_spec import JobSpec
from worker.pipelines.report import _versions


def test_versions_name_torch_transformers_and_the_project() -> None:
    v = _versions()
    assert v["torch"] == torch.__version__
    assert v["transformers"] == transformers.__version__
    assert v["scalpel"] == version("scalpel")


def test_a_recipe_spec_dumps_resolved_and_round_trips() -> None:
    spec = JobSpec.model_validate(
        {"model": "minilm-l6", "dataset": {"name": "sst2"}, "recipe": "obert-80",
         "pruning": {"sparsity": 0.75}}
    )  # fmt: skip
    dumped = spec.model_dump(mode="json")  # what the report's "spec" records
    assert dumped["recipe"] == "obert-80@2"
    assert dumped["pruning"]["method"] == "obert"
    assert dumped["pruning"]["sparsity"] == 0.75
    assert dumped["distillation"]["enabled"] is True
    assert JobSpec.model_validate(dumped) == spec  # the stored spec re-validates unchanged
