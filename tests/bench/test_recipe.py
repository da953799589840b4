"""bench/recipe.py's job bodies: the budget merged over a recipe, and --override over that."""

from __future__ import annotations

import uuid

import pytest

from bench import recipe


def test_deep_merge_merges_nested_objects_and_leaves_inputs_alone() -> None:
    base = {"a": {"b": 1, "c": {"d": 2}}, "e": 3}
    extra = {"a": {"c": {"f": 4}}, "e": {"g": 5}}
    assert recipe.deep_merge(base, extra) == {"a": {"b": 1, "c": {"d": 2, "f": 4}}, "e": {"g": 5}}
    assert base == {"a": {"b": 1, "c": {"d": 2}}, "e": 3}


def test_config_body_applies_budget_then_override() -> None:
    override = '{"training": {"learning_rate": 1e-4}, "pruning": {"obert": {"num_grads": 128}}}'
    args = recipe.parse_args(["--steps", "400", "--override", override])
    body = recipe.config_body(args, "obert-90", uuid.uuid4())
    assert body["training"]["recovery_max_steps"] == 400
    assert body["training"]["learning_rate"] == 1e-4
    assert body["pruning"]["schedule"]["steps"] == 300  # the recipe prunes over 3/4 of recovery
    assert body["pruning"]["obert"] == {"num_grads": 128}
    assert args.override["pruning"]["obert"]["num_grads"] == 128


def test_override_must_be_an_object() -> None:
    with pytest.raises(SystemExit):
        recipe.parse_args(["--override", "[1, 2]"])


def test_default_budget_follows_each_recipes_recovery_epochs() -> None:
    args = recipe.parse_args([])  # 8000 examples at batch 16: 500 steps an epoch
    assert args.dense_steps == 1000
    steps = {
        c: recipe.config_body(args, c, uuid.uuid4())["training"]["recovery_max_steps"]
        for c in recipe.CONFIGS
        if c != "dense"
    }
    assert steps == {
        "obert-80": 1000,
        "obert-90": 1500,
        "gmp-80": 1000,
        "gmp-90": 1500,
        "compound-3l-80-block4-int8": 1000,
        # the structured recipes recover as obert-80 (2 epochs), split between their steps
        "structured-1.5x": 1000, "structured-2x": 1000, "structured-3x": 1000,
        "structured-4x": 1000, "structured-2x-int8": 1000,
    }  # fmt: skip
    targets = {c: recipe.config_body(args, c, uuid.uuid4()).get("pruning", {}).get("structured")
               for c in ("structured-1.5x", "structured-2x", "structured-4x")}  # fmt: skip
    assert targets == {"structured-1.5x": {"target_speedup": 1.5}, "structured-2x": None,
                       "structured-4x": {"target_speedup": 4.0}}  # fmt: skip
    fixed = recipe.parse_args(["--steps", "300"])
    assert fixed.dense_steps == 300
    assert recipe.config_body(fixed, "gmp-90", uuid.uuid4())["pruning"]["schedule"]["steps"] == 225


def test_a_task_sets_its_data_set_options_and_the_task_in_every_body() -> None:
    args = recipe.parse_args(
        ["--task", "question_answering", "--max-length", "256", "--doc-stride", "128"]
    )
    assert args.dataset == "squad"
    dense = recipe.dense_body(args)
    assert dense["task"] == "question_answering"
    assert dense["dataset"]["doc_stride"] == 128 and dense["dataset"]["max_length"] == 256
    body = recipe.config_body(args, "gmp-80", uuid.uuid4())
    assert body["task"] == "question_answering" and body["dataset"]["name"] == "squad"
    from app.schemas.job_spec import JobSpec

    spec = JobSpec.model_validate(body)
    assert spec.training.learning_rate == 8e-5  # the task's default over the recipe's
    assert spec.dataset.max_length == 256  # the budget's over the task's 384
