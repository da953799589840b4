"""What each configuration of bench/recipe.py runs and reports: the configurations, the job
body of each (its recipe with the budget merged over it, and --override over that) and its
result line (read from the job's report.json: the exported artifact against the dense model).
"""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path
from typing import Any

from app.recipes import deep_merge  # the job spec's own merge (a different `kind` replaces)
from app.reports import OnnxBlock, OnnxSection, Report, Scored, Section
from app.schemas.job_spec import GradualSchedule
from bench.common import machine, peak_rss_bytes, result_name

CONFIGS: dict[str, str] = {  # configuration -> built-in recipe
    "dense": "",  # the dense model's own line
    "obert-80": "obert-80",
    "obert-90": "obert-90",
    "gmp-80": "gmp-80",
    "gmp-90": "gmp-90",
    "compound-3l-80-block4-int8": "compound-3l-80-int8",
    # structured pruning (heads and neurons to a measured speedup): the ladder and the compound
    "structured-1.5x": "structured-2x",
    "structured-2x": "structured-2x",
    "structured-3x": "structured-3x",
    "structured-4x": "structured-3x",
    "structured-2x-int8": "structured-2x-int8",
    "structured-8x-int8": "structured-2x-int8",
}
# Configurations that are a recipe with other structured options: another speedup target, or
# the target measured on the int8 file (the compound aimed at its own runtime)
STRUCTURED_OPTIONS: dict[str, dict[str, Any]] = {
    "structured-1.5x": {"target_speedup": 1.5},
    "structured-4x": {"target_speedup": 4.0},
    "structured-8x-int8": {"target_speedup": 8.0, "precision": "int8"},
}
# Baselines of no recipe: layer dropping alone (keep N evenly spaced layers, nothing pruned),
# recovered with distillation for the recipes' 2 epochs, at the 1.5e-4 the compound's version 3
# found better than 5e-5 for a dropped-layer student. Beside the structured ladder at equal
# measured speedup.
LAYER_BASELINES = {"layers-3": 3, "layers-2": 2, "layers-1": 1}
CONFIGS.update(dict.fromkeys(LAYER_BASELINES, ""))
DEFAULT_TRAIN_EXAMPLES = 8000
TASK_DATASETS: dict[str, str] = {  # task -> its built-in data set
    "sequence_classification": "sst2",
    "regression": "stsb",
    "token_classification": "conll2003",
    "question_answering": "squad",
}
DEFAULT_DENSE_EPOCHS = 2.0  # 1000 steps of the default subset at batch 16
SMOKE = {"train_examples": 64, "steps": 4, "dense_steps": 4, "eval_examples": 64}
SMOKE_OBERT = {"num_grads": 8, "grad_batch_size": 4}


def dataset_body(args: argparse.Namespace) -> dict[str, Any]:
    ds: dict[str, Any] = {
        "name": args.dataset,
        "max_length": args.max_length,
        "max_train_examples": args.train_examples,
    }
    if args.eval_examples is not None:
        ds["max_eval_examples"] = args.eval_examples
    if args.doc_stride is not None:
        ds["doc_stride"] = args.doc_stride
    return ds


def dense_body(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "task": args.task,
        "model": "minilm-l6",
        "dataset": dataset_body(args),
        "pruning": {"method": "none"},
        "training": {
            "finetune_dense": "always",
            "max_steps": args.dense_steps,
            "batch_size": args.batch_size,
            "seed": args.seed,
            **({"learning_rate": args.dense_lr} if args.dense_lr else {}),
        },
    }


def steps_per_epoch(args: argparse.Namespace) -> int:
    return max(1, -(-int(args.train_examples) // int(args.batch_size)))


def recovery_steps(args: argparse.Namespace, recipe_spec: dict[str, Any]) -> int:
    """--steps when given, else the recipe's own recovery epochs over the train subset (2
    epochs for the 80% recipes and the compound, 3 for the 90% ones, as the paper gives the
    higher sparsity the longer schedule)."""
    if args.steps is not None:
        return int(args.steps)
    epochs = float(recipe_spec.get("training", {}).get("recovery_epochs", 1.0))
    return max(1, round(epochs * steps_per_epoch(args)))


def layer_baseline_spec(keep: int) -> dict[str, Any]:
    return {
        "pruning": {"method": "none"},
        "layers": {"keep": keep},
        "distillation": {"enabled": True, "hardness": 1.0, "temperature": 2.0},
        "training": {"recovery_epochs": 2.0, "learning_rate": 1.5e-4},
    }


def config_body(args: argparse.Namespace, config: str, model_id: uuid.UUID) -> dict[str, Any]:
    """The recipe with the budget merged over it (the spec's own recipe merge does that)."""
    from app import recipes

    recipe = recipes.find(CONFIGS[config]) if config not in LAYER_BASELINES else None
    base = recipe.spec if recipe is not None else layer_baseline_spec(LAYER_BASELINES[config])
    steps = recovery_steps(args, base)
    training: dict[str, Any] = {
        "finetune_dense": "auto",  # the uploaded dense model has a trained head: no fine-tune
        "max_steps": args.dense_steps,
        "recovery_max_steps": steps,
        "batch_size": args.batch_size,
        "seed": args.seed,
    }
    body: dict[str, Any] = {
        "task": args.task,
        "model": str(model_id),
        "dataset": dataset_body(args),
        "training": training,
    }
    if recipe is None:  # a baseline: its spec in full, the budget over it
        body = deep_merge(base, body)
    else:
        body["recipe"] = recipe.ref
    pruning = base.get("pruning", {})
    sched = pruning.get("schedule", {})
    if sched.get("kind") == "gradual":
        rec_epochs = float(base.get("training", {}).get("recovery_epochs", 1.0))
        fraction = min(1.0, float(sched["epochs"]) / rec_epochs) if sched.get("epochs") else 1.0
        body["pruning"] = {
            "schedule": {
                "kind": "gradual",
                "epochs": None,
                "steps": max(1, round(fraction * steps)),
            }
        }
    if pruning.get("method") == "obert" and args.smoke:
        body.setdefault("pruning", {})["obert"] = dict(SMOKE_OBERT)
    if config in STRUCTURED_OPTIONS:
        body["pruning"] = {"structured": dict(STRUCTURED_OPTIONS[config])}
    if base.get("quantization", {}).get("method") == "qat_int8":
        qat = steps if args.qat_steps is None else args.qat_steps
        body["quantization"] = {"qat_steps": qat}
    return deep_merge(body, args.override)


def budget_of(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    spec = report.job_spec()
    sched = spec.pruning.schedule
    gradual = sched if isinstance(sched, GradualSchedule) else None
    quantization, obert = spec.quantization, spec.pruning.obert
    dataset = report.dataset
    return {
        "train_examples": dataset.train_examples if dataset else None,
        "dev_examples": dataset.dev_examples if dataset else None,
        "max_length": report.max_length,
        "batch_size": spec.training.batch_size,
        "dense_steps": args.dense_steps,
        "recovery_steps": spec.training.recovery_max_steps,
        "prune_schedule_steps": gradual.steps if gradual else None,
        "pruning_steps": gradual.pruning_steps if gradual else None,
        "qat_steps": quantization.qat_steps if quantization.method == "qat_int8" else None,
        "training_steps_run": report.training_steps,
        "obert": obert.model_dump(mode="json") if obert else None,
        "latency_iters_b1_b32": list(args.latency_iters),
        "smoke": args.smoke,
    }


def primary(block: Scored) -> tuple[str, float | None]:
    pm = block.primary()
    return pm.name, pm.value


def _dump(section: Section | None) -> dict[str, Any] | None:
    return None if section is None else section.model_dump(mode="json")


def _onnx_of(report: Report) -> tuple[OnnxSection, OnnxBlock]:
    """The report's ONNX section and its dense baseline file."""
    if report.onnx is None or report.onnx.dense_fp32 is None:
        raise SystemExit(f"the report of job {report.job_id!r} has no ONNX dense baseline")
    return report.onnx, report.onnx.dense_fp32


def _speedup_b1(block: OnnxBlock) -> float | None:
    return block.speedup_vs_dense.batch_1 if block.speedup_vs_dense else None


def result_line(
    config: str,
    args: argparse.Namespace,
    report: Report,
    dense: dict[str, Any],
    wall_s: float,
) -> dict[str, Any]:
    onnx, base = _onnx_of(report)
    quantized = report.job_spec().quantization.method != "none"
    art = onnx.int8 if quantized else onnx.fp32
    if config == "dense":  # the dense job: its own exported model is the baseline
        art = base = onnx.fp32
    comp = report.compressed
    name, value = primary(art)
    _, dense_value = primary(base)
    line: dict[str, Any] = {
        "config": config,
        "task": report.task,
        "dataset": report.dataset.name if report.dataset else None,
        "recipe": report.job_spec().recipe,
        "artifact": art.file,
        "metric": name,
        "value": value,
        "dense_value": dense_value,
        "retained": round(value / dense_value, 6) if value is not None and dense_value else None,
        "drop": None if value is None or dense_value is None else round(dense_value - value, 6),
        "metrics": art.scalars(),
        "dense_metrics": base.scalars(),
        "sparsity": comp.sparsity.overall,
        "latency_ms_b1": art.latency_cpu_ms.batch_1_ms,
        "dense_latency_ms_b1": base.latency_cpu_ms.batch_1_ms,
        "speedup_b1": _speedup_b1(art),
        "latency_ms_b32": art.latency_cpu_ms.batch_32_ms,
        "dense_latency_ms_b32": base.latency_cpu_ms.batch_32_ms,
        "size_gzip_mb": art.file_size.gzip_mb,
        "dense_size_gzip_mb": base.file_size.gzip_mb,
        "size_raw_mb": art.file_size.raw_mb,
        "budget": budget_of(args, report),
        "overrides": args.override,
        "num_hidden_layers": comp.num_hidden_layers,
        "parameters": comp.parameters,
        "pytorch_value": primary(comp)[1],
        "pytorch_dense_value": primary(report.dense)[1],
        "onnx_fp32_parity": _dump(onnx.fp32.parity),
        "teacher_cache": _dump(report.teacher_cache),
        "recover_seconds_per_step": (
            round(report.stage_seconds["recover"] / report.training_steps["recover"], 4)
            if report.training_steps.get("recover") and "recover" in report.stage_seconds
            else None
        ),
        "pruning_applied": [a.model_dump(mode="json") for a in report.pruning.applied]
        if report.pruning
        else [],
        "stage_seconds": report.stage_seconds,
        "wall_seconds": round(wall_s, 1),
        "dense_model": {
            "cached": dense["cached"],
            "fine_tune_seconds": dense["fine_tune_seconds"],
            "path": dense["path"],
        },
        "peak_rss_mb": round(peak_rss_bytes() / 2**20),
        "versions": _dump(report.versions),
        "machine": machine(),
    }
    # the other ONNX file of the job: int8 of a fp32 recipe (every job exports one), or the
    # fp32 model a quantized recipe started from (what int8 itself adds)
    other = "fp32" if quantized else "int8"
    o = onnx.fp32 if quantized else onnx.int8
    line[f"onnx_{other}"] = {
        "value": primary(o)[1],
        "latency_ms_b1": o.latency_cpu_ms.batch_1_ms,
        "speedup_b1": _speedup_b1(o),
        "latency_ms_b32": o.latency_cpu_ms.batch_32_ms,
        "size_gzip_mb": o.file_size.gzip_mb,
    }
    if onnx.int8.batch_1 is not None:  # dynamic int8 reads differently one example at a time
        line["int8_value_b1"] = primary(onnx.int8.batch_1)[1]
    compaction = onnx.compaction.model_dump(mode="json") if onnx.compaction else {}
    line["onnx_compaction"] = {k: v for k, v in compaction.items() if k != "method"}
    s = report.structured
    if s is not None:
        line["structured"] = {
            "target_speedup": s.target_speedup, "steps": s.steps, "precision": s.precision,
            "predicted_speedup": s.final.predicted_speedup,
            "plan_measured_speedup": s.plan_measured_speedup,
            "measured_speedup": s.measured_speedup,
            "measured_over_predicted": s.measured_over_predicted,
            "measured_over_plan": s.measured_over_plan,
            "kept_heads": s.final.kept_heads, "kept_neurons": s.final.kept_neurons,
            "fraction_removed": s.final.fraction_removed,
            "per_step": [
                {"target_speedup": r.target_speedup, "plan_measured_speedup":
                 r.plan_measured_speedup, "plan_round": r.plan_round, "plan_stopped":
                 r.plan_stopped} for r in s.per_step
            ],
            "latency_table_key": s.latency_table.key.model_dump(mode="json"),
        }  # fmt: skip
    return line


def write_line(line: dict[str, Any], out: Path | None, smoke: bool) -> None:
    text = json.dumps(line)
    print(text, flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        parts = [line.get("dataset", "sst2"), line["config"]]
        parts += ["override"] if line.get("overrides") else []
        parts += ["smoke"] if smoke else []
        (out / result_name("recipe", *parts)).write_text(text + "\n", encoding="utf-8")
