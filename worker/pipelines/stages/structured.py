"""The `structured` stage (pruning.method "structured", ZipLM): whole attention heads and FFN
neurons removed, layer by layer as a measured latency table allows, in `steps` gradual steps
with recovery between them; it replaces `prune` and `recover` and closes the `compress` group.

Step k of n aims at ``s_k = target_speedup ** (k / n)``, measured: calibrate the (already
pruned) model on `calibration_batches` training batches, take every layer's head and neuron
levels, offer each layer its kept counts up to what it keeps now (losses normalised as
`normalize_loss_by` says; latencies from the latency model), allocate within
``speedup_budget(dense, internal target)``, time the allocation's exact shapes against the
dense graph and re-solve until the measured speedup is in s_k's band (structured_measure: at
most PLAN_ROUNDS rounds; `target_band`, PLAN_TOLERANCE wide), apply the round kept (masks
AND-ed with the held ones, so a structure removed stays removed), free the calibration, then
recover (distilling as the spec says) for the step's share of the recovery budget with the
masks held. Kept counts are read back from the masks, so they never grow.

Latency model (structured_plan.LatencyModel): the block table of this host (cached under
``<work_dir>/latency``) prices each layer's attention and FFN at their kept counts; the dense
model's whole ONNX graph, timed here at the table's shapes, is the reference (before layer
dropping), and the student's graph less its layers' full blocks is the fixed part. It only
proposes: each plan is then timed whole (its measured points refine the next proposals).

Each completed step (pruning and recovery) writes a `prune_step` checkpoint: the model, the
masks, and the record (per-step counts, the latency table used); a redelivered job continues
with the next step.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from typing import Any

import torch
from torch import Tensor, nn

from app.schemas.job_spec import JobSpec
from app.schemas.pruning_spec import PLAN_TOLERANCE
from worker.pipelines import pruning as pr
from worker.pipelines.architecture import prunable_targets
from worker.pipelines.checkpoint import rng_state
from worker.pipelines.compaction import compact_structures
from worker.pipelines.context import PipelineContext
from worker.pipelines.inference import task_batches
from worker.pipelines.latency_table import (
    LatencyTable,
    cached_latency_table,
)
from worker.pipelines.stages import recover as rc
from worker.pipelines.stages.checkpoints import PRUNE_STEP, JobCheckpoints
from worker.pipelines.stages.dense import Dense
from worker.pipelines.stages.drop_layers import Student
from worker.pipelines.stages.load import Loaded
from worker.pipelines.stages.plan import recovery_steps
from worker.pipelines.stages.prune import Pruned, after_prune
from worker.pipelines.stages.recover import MASKS, MODEL, Recovered, recover_held
from worker.pipelines.structured_apply import apply_structure, head_parameters, neuron_parameters
from worker.pipelines.structured_calibrate import (
    StructuredCalibration,
    layer_structures,
)
from worker.pipelines.structured_measure import (
    PLAN_METHOD,
    PLAN_ROUNDS,
    GraphTimer,
    Timer,
    measured_choice,
    minimal_copy,
    prior_points,
)
from worker.pipelines.structured_plan import (
    FIXED_PART,
    LatencyModel,
    calibration_options,
    choose_from,
    graph_precision,
    kept_counts,
    latency_key,
    measured_graphs_seconds,
    options_of,
    unreachable,
)

log = logging.getLogger(__name__)

STAGE = "structured"


def calibrate(loaded: Loaded, model: nn.Module, step: int, device: torch.device) -> Any:
    spec, opts = loaded.spec, options_of(loaded.spec)
    cal = StructuredCalibration(model, damp=opts.damp, device=device)
    order = list(range(len(loaded.train_items)))
    random.Random(spec.training.seed * 7919 + step).shuffle(order)
    batches = task_batches(
        loaded.task, loaded.tokenizer, loaded.train_items, spec.training.batch_size,
        spec.dataset.max_length, device, order,
    )  # fmt: skip
    for _, batch in itertools.islice(batches, opts.calibration_batches):
        cal.add_batch(batch)
    return cal


def _sparsity(masks: dict[str, Tensor]) -> float:
    total = sum(m.numel() for m in masks.values())
    return round(1.0 - sum(int(m.sum()) for m in masks.values()) / total, 6)


def prune_step(
    loaded: Loaded, pruned: Pruned, lm: LatencyModel, k: int, ctx: PipelineContext,
    timer: Timer, prior: list[tuple[float, float]],
) -> dict[str, Any]:  # fmt: skip
    """Step k's calibration, measured allocation (`timer` times each plan; `prior`: earlier
    steps' measured points) and masks (held from here on); its report row."""
    opts, state, model = options_of(loaded.spec), pruned.masks, pruned.model
    target = opts.target_speedup ** (k / opts.steps)
    cal = calibrate(loaded, model, k, ctx.device)
    now = kept_counts(cal.layers, state.masks)
    options = calibration_options(cal, lm, opts.normalize_loss_by)

    def solve(t: float) -> tuple[tuple[int, ...], tuple[int, ...], float]:
        return choose_from(options, lm, t, (now[0], now[1]))

    plan = measured_choice(solve, lm, target, timer, prior=prior, rule=opts.target_band)
    heads, neurons, loss = plan.plan.heads, plan.plan.neurons, plan.plan.loss
    masks = apply_structure(model, cal, heads, neurons)
    cal.free()
    if state.masks:
        masks = {n: m & state.masks[n] if n in state.masks else m for n, m in masks.items()}
    state.set(masks)
    kept_h, kept_n, indices = kept_counts(cal.layers, masks)
    predicted = lm.latency(kept_h, kept_n)
    log.info(
        "structured step %d: target %.3fx, predicted %.3fx, measured %.3fx (round %d of %d)",
        k, target, lm.dense / predicted, plan.plan.measured_speedup, plan.plan.round,
        len(plan.rounds),
    )  # fmt: skip
    return {
        "step": k, "target_speedup": target, "calibration_tokens": cal.tokens,
        "calibration_batches": cal.batches, "kept_heads": kept_h, "kept_neurons": kept_n,
        "kept_head_indices": indices, "loss": loss, "predicted_latency_ms": 1000 * predicted,
        "predicted_speedup": lm.dense / predicted, "sparsity": _sparsity(masks),
        **plan.as_row(),
    }  # fmt: skip


def recovery_split(spec: JobSpec, n_train: int) -> list[int]:
    """The recovery budget split evenly across the steps (the first ones get one less)."""
    total, n = recovery_steps(spec, n_train), options_of(spec).steps
    return [k * total // n - (k - 1) * total // n for k in range(1, n + 1)]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000 * seconds


def latency_model(
    loaded: Loaded, dense: Dense, model: nn.Module, layers: int, ctx: PipelineContext
) -> LatencyModel:
    """The block table of this host (cached) and, timed here in the same alternating rounds at
    the table's shapes, the student's whole ONNX graph at full width and at one head and one
    neuron a layer (at the table's precision), and the dense model's fp32 graph (the
    reference) when layers were dropped or the student's graphs are int8."""
    key = latency_key(model, loaded.spec)
    table = cached_latency_table(key, ctx.settings.work_dir / "latency")
    outputs, where = loaded.task.outputs, ctx.scratch / "structured-latency"
    tok = loaded.tokenizer
    small, _ = compact_structures(minimal_copy(model))
    graphs = {"student": model, "minimal": small}
    reference = dense.model  # before layer dropping (the student is then a smaller copy)
    at = graph_precision(key, loaded.spec)
    if len(layer_structures(reference)) != layers or at.int8:  # the student's graph is not it
        graphs["dense"] = reference  # fp32, whatever the student's precision
    precisions = {"student": at, "minimal": at}
    got = measured_graphs_seconds(graphs, tok, key, outputs, where, precisions=precisions)
    # no layers dropped and fp32: the student at full width is the dense graph
    measured_dense = got["dense"] if "dense" in got else got["student"]
    measured_student, measured_minimal = got["student"], got["minimal"]
    return LatencyModel(table, layers, measured_dense, measured_student, measured_minimal)


def plan_timer(
    loaded: Loaded, dense: Dense, model: nn.Module, layers: int, ctx: PipelineContext
) -> Timer:
    """Each plan of `model` timed as a compacted graph against the dense one (the graph the
    export compares with), at the latency table's shapes on this host."""
    reference = dense.model if len(layer_structures(dense.model)) != layers else model
    key = latency_key(model, loaded.spec)
    return GraphTimer(reference, model, loaded.tokenizer, key, loaded.task.outputs,
                      ctx.scratch / "structured-plan",
                      precision=graph_precision(key, loaded.spec))  # fmt: skip


def _restored_model(record: dict[str, Any], layers: int) -> LatencyModel:
    lm = record["latency_model"]
    got = [lm.get(f"measured_{k}_ms") for k in ("dense", "student", "minimal")]
    dense, student, minimal = (None if v is None else v / 1000 for v in got)
    table = LatencyTable.from_json(record["latency_table"])
    return LatencyModel(table, layers, dense, student, minimal)


def new_record(spec: JobSpec, lm: LatencyModel) -> dict[str, Any]:
    opts = options_of(spec)
    return {
        **opts.model_dump(mode="json"),
        "step_targets": [opts.target_speedup ** (k / opts.steps) for k in range(1, opts.steps + 1)],
        "latency_table": lm.table.to_json(),
        "latency_model": {
            "layers": lm.layers, "dense_ms": 1000 * lm.dense, "fixed_ms": 1000 * lm.fixed,
            "block_scale": lm.scale,
            "fixed_part": FIXED_PART,
            "measured_dense_ms": _ms(lm.measured_dense),
            "measured_student_ms": _ms(lm.measured_student),
            "measured_minimal_ms": _ms(lm.measured_minimal),
            "best_speedup": lm.best_speedup if math.isfinite(lm.best_speedup) else None,
        },
        "plan_measurement": {
            "max_rounds": PLAN_ROUNDS, "tolerance": PLAN_TOLERANCE, "method": PLAN_METHOD,
        },
        "per_step": [],
    }  # fmt: skip


def stage_structured(
    loaded: Loaded, dense: Dense, student: Student, ck: JobCheckpoints, ctx: PipelineContext
) -> Recovered:
    spec, model = loaded.spec, student.model
    opts = options_of(spec)
    n = opts.steps
    pruned = Pruned(model, student.kept_layers, pr.MaskState(prunable_targets(model)), None)
    ctx.reporter.stage("prune")
    layers = len(layer_structures(model))
    record = restore_step(ck, pruned, ctx)
    if record is None:
        record = new_record(spec, latency_model(loaded, dense, model, layers, ctx))
    lm = _restored_model(record, layers)
    if lm.best_speedup < opts.target_speedup:
        raise unreachable(opts.target_speedup, lm)
    split = recovery_split(spec, len(loaded.train_items))
    score = after_prune(loaded, pruned, ctx)
    timer = plan_timer(loaded, dense, model, layers, ctx)
    meter = None
    for k in range(len(record["per_step"]) + 1, opts.steps + 1):
        prior = prior_points(record["per_step"], lm)
        row = prune_step(loaded, pruned, lm, k, ctx, timer, prior)
        row["train_step"] = at = sum(split[: k - 1])
        pruned.masks.applied.append((at, row["sparsity"]))
        score(at, row["sparsity"], speedup=row["plan_measured_speedup"])
        if split[k - 1] > 0:
            if ctx.reporter.current != "recover":
                ctx.reporter.stage("recover")
            if meter is None:  # one stage's telemetry; each recovery a segment of it (`at`),
                meter = ctx.reporter.train_meter(total=sum(split))  # timed without the planning

            def on_step(done: int, total: int, k: int = k) -> None:
                ctx.reporter.step((k - 1 + done / total) / n)

            seed = spec.training.seed + k - 1
            recover_held(loaded, dense, pruned, split[k - 1], ctx, seed=seed, on_step=on_step,
                         telemetry=meter.at(at))  # fmt: skip
        row["recovery_steps"] = split[k - 1]
        record["per_step"].append(row)
        save_step(ck, pruned, record, ctx)
    record["final"] = final_summary(model, lm, pruned.masks.masks)
    record["final"]["plan_measured_speedup"] = record["per_step"][-1].get("plan_measured_speedup")
    pruned.masks.release()
    model.eval()
    steps = {"recover": sum(split)} if sum(split) else {}
    return Recovered(
        model, student.kept_layers, pruned.masks.masks, list(pruned.masks.applied),
        dict(pruned.prune_metric), steps, structured=record,
    )  # fmt: skip


def final_summary(
    model: nn.Module, lm: LatencyModel, masks: dict[str, Tensor] | None
) -> dict[str, Any]:
    layers = layer_structures(model)
    heads, neurons, indices = kept_counts(layers, masks)
    removed = sum(
        (s.heads - h) * head_parameters(s) + (s.neurons - n) * neuron_parameters(s)
        for s, h, n in zip(layers, heads, neurons, strict=True)
    )
    total = sum(p.numel() for p in model.parameters())
    return {
        "kept_heads": heads, "kept_neurons": neurons, "kept_head_indices": indices,
        "heads": sum(s.heads for s in layers), "heads_kept": sum(heads),
        "neurons": sum(s.neurons for s in layers), "neurons_kept": sum(neurons),
        "predicted_latency_ms": 1000 * lm.latency(heads, neurons),
        "predicted_speedup": lm.speedup(heads, neurons), "removed_parameters": removed,
        "total_parameters": total, "fraction_removed": removed / total if total else 0.0,
    }  # fmt: skip


def save_step(ck: JobCheckpoints, pruned: Pruned, record: dict[str, Any], ctx: Any) -> None:
    """The `prune_step` checkpoint after a completed step (its pruning and recovery)."""
    if ck.store is None:
        return
    tensors: dict[str, Any] = {MODEL: pruned.model.state_dict(), "rng": rng_state()[0]}
    tensors[MASKS] = pruned.masks.masks or {}
    meta = {
        "stage": STAGE, "completed": list(ck.completed), "prune_step": len(record["per_step"]),
        "record": record, "applied": [list(a) for a in pruned.masks.applied],
        "prune_metric": rc._metric_meta(pruned.prune_metric), **ck.common_meta(ctx),
    }  # fmt: skip
    ck.store.save(PRUNE_STEP, meta, tensors)


def restore_step(ck: JobCheckpoints, pruned: Pruned, ctx: PipelineContext) -> Any:
    """The record of the last completed step, its model and masks restored (None if none)."""
    cp = ck.store.latest(PRUNE_STEP) if ck.store is not None else None
    if cp is None or cp.meta.get("stage") != STAGE:
        return None
    ck.restore_common(cp, ctx)
    pruned.model.load_state_dict(cp.tensors(MODEL))
    pruned.masks.set({k: v.to(ctx.device) for k, v in cp.tensors(MASKS).items()})
    pruned.masks.applied[:] = rc._applied_of(cp.meta["applied"])
    pruned.prune_metric.update(rc._metric_of(cp.meta["prune_metric"]))
    done, record = int(cp.meta["prune_step"]), cp.meta["record"]
    ck.resumed_from = {
        "stage": STAGE, "completed": list(ck.completed), "prune_step": done,
        "train_step": sum(int(r["recovery_steps"]) for r in record["per_step"]),
    }  # fmt: skip
    log.info("resuming structured pruning after step %d", done)
    return record
