"""bench/recipe.py's command line and its configurations' job bodies and result lines
(bench/recipe_jobs.py): the budget merged over a recipe, and --override over that."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from app.recipes import deep_merge
from app.schemas.job_spec import JobSpec
from bench import recipe
from bench import recipe_jobs as jobs
from worker.pipelines.stages.plan import plan


def test_deep_merge_merges_nested_objects_and_leaves_inputs_alone() -> None:
    base = {"a": {"b": 1, "c": {"d": 2}}, "e": 3}
    extra = {"a": {"c": {"f": 4}}, "e": {"g": 5}}
    assert deep_merge(base, extra) == {"a": {"b": 1, "c": {"d": 2, "f": 4}}, "e": {"g": 5}}
    assert base == {"a": {"b": 1, "c": {"d": 2}}, "e": 3}


def test_config_body_applies_budget_then_override() -> None:
    override = '{"training": {"learning_rate": 1e-4}, "pruning": {"obert": {"num_grads": 128}}}'
    args = recipe.parse_args(["--steps", "400", "--override", override])
    body = jobs.config_body(args, "obert-90", uuid.uuid4())
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
        c: jobs.config_body(args, c, uuid.uuid4())["training"]["recovery_max_steps"]
        for c in jobs.CONFIGS
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
        "structured-4x": 1000, "structured-2x-int8": 1000, "structured-8x-int8": 1000,
        "layers-3": 1000, "layers-2": 1000, "layers-1": 1000,
    }  # fmt: skip
    targets = {c: jobs.config_body(args, c, uuid.uuid4()).get("pruning", {}).get("structured")
               for c in ("structured-1.5x", "structured-2x", "structured-4x",
                         "structured-8x-int8")}  # fmt: skip
    assert targets == {
        "structured-1.5x": {"target_speedup": 1.5}, "structured-2x": None,
        "structured-4x": {"target_speedup": 4.0},
        "structured-8x-int8": {"target_speedup": 8.0, "precision": "int8"},
    }  # fmt: skip
    compound = JobSpec.model_validate(jobs.config_body(args, "structured-8x-int8", uuid.uuid4()))
    assert compound.quantization.method == "qat_int8"
    assert compound.pruning.structured is not None
    assert compound.pruning.structured.precision == "int8"
    assert compound.pruning.structured.steps == 3
    fixed = recipe.parse_args(["--steps", "300"])
    assert fixed.dense_steps == 300
    assert jobs.config_body(fixed, "gmp-90", uuid.uuid4())["pruning"]["schedule"]["steps"] == 225


def test_a_layer_baseline_drops_layers_prunes_nothing_and_is_a_valid_spec() -> None:
    args = recipe.parse_args(["--steps", "400", "--override", '{"training": {"seed": 3}}'])
    body = jobs.config_body(args, "layers-2", uuid.uuid4())
    assert "recipe" not in body
    assert body["layers"] == {"keep": 2} and body["pruning"] == {"method": "none"}
    assert body["training"]["recovery_max_steps"] == 400
    assert body["training"]["learning_rate"] == 1.5e-4 and body["training"]["seed"] == 3
    spec = JobSpec.model_validate(body)
    assert spec.distillation.enabled and spec.layers is not None and spec.layers.keep == 2
    names = [n for n, _ in plan(spec, finetune=False, n_train=8000)]
    assert "drop_layers" in names and "recover" in names and "prune" not in names


def test_a_task_sets_its_data_set_options_and_the_task_in_every_body() -> None:
    args = recipe.parse_args(
        ["--task", "question_answering", "--max-length", "256", "--doc-stride", "128"]
    )
    assert args.dataset == "squad"
    dense = jobs.dense_body(args)
    assert dense["task"] == "question_answering"
    assert dense["dataset"]["doc_stride"] == 128 and dense["dataset"]["max_length"] == 256
    body = jobs.config_body(args, "gmp-80", uuid.uuid4())
    assert body["task"] == "question_answering" and body["dataset"]["name"] == "squad"
    from app.schemas.job_spec import JobSpec

    spec = JobSpec.model_validate(body)
    assert spec.training.learning_rate == 8e-5  # the task's default over the recipe's
    assert spec.dataset.max_length == 256  # the budget's over the task's 384


def test_result_line_reads_the_report_model() -> None:
    from app.reports import Report
    from tests.factories.reports import report_json

    args = recipe.parse_args([])
    dense = {"cached": True, "fine_tune_seconds": 1.6, "path": "/cache/dense"}
    line = jobs.result_line("obert-80", args, Report.model_validate(report_json()), dense, 12.0)
    # a quantized recipe: its int8 ONNX file against the dense model exported the same way
    assert (line["artifact"], line["metric"], line["value"], line["dense_value"]) == (
        "model-int8.onnx", "accuracy", 0.75, 0.875
    )  # fmt: skip
    assert line["retained"] == round(0.75 / 0.875, 6) and line["drop"] == 0.125
    assert line["metrics"] == {"accuracy": 0.75, "macro_f1": 0.7}
    assert line["speedup_b1"] == 2.0 and line["int8_value_b1"] == 0.6875
    assert line["onnx_fp32"]["value"] == 0.8125 and line["onnx_fp32"]["speedup_b1"] == 1.5
    assert line["recipe"] == "obert-80@2" and line["recover_seconds_per_step"] == 0.35
    assert line["budget"]["pruning_steps"] == 8 and line["budget"]["batch_size"] == 16
    assert line["budget"]["obert"]["num_recomputations"] == 1
    assert line["pruning_applied"][1] == {"step": 4, "sparsity": 0.6}
    assert "method" not in line["onnx_compaction"] and line["onnx_compaction"]["applied"]
    assert line["teacher_cache"]["hit_batches"] == 6 and "structured" not in line
    st = jobs.result_line(
        "structured-2x", args, Report.model_validate(report_json(structured=True)), dense, 1.0
    )["structured"]
    assert (st["target_speedup"], st["predicted_speedup"], st["measured_speedup"]) == (
        1.5, 1.52, 1.4
    )  # fmt: skip
    assert st["plan_measured_speedup"] == 1.45
    assert st["measured_over_plan"] == pytest.approx(1.4 / 1.45)
    assert st["latency_table_key"]["seq_len"] == 16 and st["kept_neurons"] == [32, 24]


def test_the_script_runs_from_the_repository_root() -> None:
    """`python bench/recipe.py`: the script finds its own package (bench.recipe_jobs)."""
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "bench/recipe.py", "--help"], cwd=root,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "structured-2x-int8" in r.stdout and "--override JSON" in r.stdout
