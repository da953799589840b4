"""Structured pruning (method "structured") as a job: gradual steps towards a measured speedup
target on a tiny BERT (a latency table measured at a few counts) and a tiny ModernBERT (a
hand-made linear table, where the allocation is checked), kept counts only going down, the
removed structures still exactly zero in the packaged model, resuming from a step checkpoint,
and an unreachable target failing the job."""

from __future__ import annotations

import itertools
import json
import math
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.factories.encoders import write_tiny_encoder
from tests.worker.pipelines.family_models import random_inputs, task_model
from tests.worker.pipelines.test_compress import PNG_SIGNATURE, ctx_for, make_env, spec
from worker.pipelines import structured_measure, structured_plan
from worker.pipelines.compress import run_pipeline
from worker.pipelines.errors import PipelineError
from worker.pipelines.latency_table import (
    BlockLatency,
    LatencyKey,
    LatencyTable,
    cache_path,
    cached_latency_table,
)
from worker.pipelines.package import load_hf_dir
from worker.pipelines.progress import MemoryReporter
from worker.pipelines.stages import structured
from worker.pipelines.structured_calibrate import StructuredCalibration, layer_structures

pytestmark = pytest.mark.usefixtures("one_thread")

DP_BOUND = 1e-9  # allocate() never exceeds the budget by more than 1e-9 of a step per layer


def job(env: dict[str, Any], **options: Any) -> Any:
    return spec(
        env["model_id"],
        pruning={"method": "structured", "structured": {"calibration_batches": 2, **options}},
        distillation={"enabled": True, "hardness": 0.5},
    )


def key_of(folder: Path, s: Any) -> Any:
    return structured_plan.latency_key(load_hf_dir(folder), s)


def linear_table(key: Any, *, head: float, neuron: float, rest: float) -> LatencyTable:
    """Seconds linear in the kept count (a hand-made table: the allocation is checked)."""
    heads, ffn = tuple(range(key.heads + 1)), tuple(range(key.ffn + 1))
    return LatencyTable(
        key,
        BlockLatency(heads, tuple(head * k for k in heads)),
        BlockLatency(ffn, tuple(neuron * k for k in ffn)),
        rest,
        rounds=1,
        iters=1,
    )


def store(table: LatencyTable, env: dict[str, Any]) -> None:
    path = cache_path(table.key, env["settings"].work_dir / "latency")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table.to_json()), encoding="utf-8")


def report_of(env: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(env["artifacts"]["report"][0].read_text())
    return data


def packaged(env: dict[str, Any], dest: Path) -> Any:
    with tarfile.open(env["artifacts"]["model"][0]) as t:
        t.extractall(dest, filter="data")
    return load_hf_dir(dest)


def check_plan(row: dict[str, Any], goal: float, plan: dict[str, Any], rule: str) -> None:
    """A step's measured plan: its rounds (each meeting its internal target as the latency
    model predicts it, no plan timed twice), the round kept being the step's counts, never
    slower than its band allows when a round that fast was timed (at_least: the goal)."""
    rounds, tol = row["plan_rounds"], plan["tolerance"]
    low, high = row["plan_band"]
    if rule == "at_least":
        assert (low, high) == pytest.approx((goal, goal * (1 + tol)))
    else:
        assert (low, high) == pytest.approx((goal * (1 - tol), goal * (1 + tol)))
    assert 1 <= len(rounds) <= plan["max_rounds"] == structured_measure.PLAN_ROUNDS
    assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1))
    assert len({(tuple(r["kept_heads"]), tuple(r["kept_neurons"])) for r in rounds}) == len(rounds)
    for r in rounds:
        assert r["predicted_speedup"] >= r["internal_target_speedup"] * (1 - DP_BOUND)
    kept = [r for r in rounds if r["chosen"]]
    assert len(kept) == 1 and kept[0]["round"] == row["plan_round"]
    assert kept[0]["kept_heads"] == row["kept_heads"]
    assert kept[0]["kept_neurons"] == row["kept_neurons"]
    assert row["plan_measured_speedup"] == kept[0]["measured_speedup"]
    measured = [r["measured_speedup"] for r in rounds]
    fast = [m for m in measured if m >= low]
    assert row["plan_met"] is bool(fast)
    if fast:
        assert row["plan_measured_speedup"] >= low
    else:
        assert row["plan_measured_speedup"] == max(measured)
    if row["plan_stopped"] == "within_tolerance":
        assert low <= measured[-1] <= high


def check_steps(st: dict[str, Any]) -> None:
    """Each step's plan measured against its target, and counts and kept heads only go
    down."""
    steps, n, target = st["per_step"], st["steps"], st["target_speedup"]
    assert [r["step"] for r in steps] == list(range(1, n + 1))
    assert st["step_targets"] == pytest.approx([target ** (k / n) for k in range(1, n + 1)])
    for row, goal in zip(steps, st["step_targets"], strict=True):
        assert row["target_speedup"] == pytest.approx(goal)
        check_plan(row, goal, st["plan_measurement"], st["target_band"])
    for before, after in itertools.pairwise(steps):
        for key in ("kept_heads", "kept_neurons"):
            assert all(a <= b for a, b in zip(after[key], before[key], strict=True))
        for a, b in zip(after["kept_head_indices"], before["kept_head_indices"], strict=True):
            assert set(a) <= set(b)
    final = st["final"]
    assert final["kept_heads"] == steps[-1]["kept_heads"]
    assert final["kept_neurons"] == steps[-1]["kept_neurons"]
    assert final["plan_measured_speedup"] == steps[-1]["plan_measured_speedup"]
    assert 0 < final["removed_parameters"] < final["total_parameters"]


def check_removed_are_zero(model: Any, final: dict[str, Any]) -> None:
    """The packaged model (after the last recovery): exactly the reported heads and neurons
    are alive, every removed one is zero on both sides."""
    for s, heads, neurons in zip(
        layer_structures(model), final["kept_head_indices"], final["kept_neurons"], strict=True
    ):
        w = s.output.weight.reshape(-1, s.heads, s.head_dim)
        alive = [i for i in range(s.heads) if bool(w[:, i].any())]
        assert alive == heads
        for inp in s.head_inputs:
            rows = inp.linear.weight.reshape(inp.parts, s.heads, s.head_dim, -1)
            assert [i for i in range(s.heads) if bool(rows[:, i].any())] == heads
        kept = s.fc2.weight.any(dim=0)
        assert int(kept.sum()) == neurons
        fc1 = s.fc1.weight.reshape(2 if s.gated else 1, s.neurons, -1)
        assert torch.equal(fc1.any(dim=2).any(dim=0), kept)


def table_only(monkeypatch: pytest.MonkeyPatch, table: LatencyTable) -> None:
    """A hand-made table alone prices the model (no whole graph timed) and a plan 'measures'
    what the table predicts: the allocation is then checked against the table's own numbers."""
    monkeypatch.setattr(
        structured, "latency_model",
        lambda loaded, dense, model, layers, ctx: structured_plan.LatencyModel(table, layers),
    )  # fmt: skip
    monkeypatch.setattr(
        structured, "plan_timer",
        lambda loaded, dense, model, layers, ctx: structured_plan.LatencyModel(
            table, layers
        ).speedup,
    )  # fmt: skip


def test_a_structured_job_on_bert_reaches_its_target(tmp_path: Path) -> None:
    env = make_env(tmp_path, n_train=32, n_dev=12)
    # the latency model is anchored to the whole graphs timed for real: a tiny model's fixed
    # part (embeddings of 30,522 tokens, per-call cost) leaves it about 1.2x at the most, and
    # it measured 1.06x in one full-suite run: the target stays below that
    s = job(env, target_speedup=1.05, steps=2)
    key = key_of(tmp_path / "upload", s)
    table = cached_latency_table(  # a few counts, few runs: the stage reads it from the cache
        key, env["settings"].work_dir / "latency", counts_ffn=[16, 32, 48, 64],
        rounds=2, iters=2, warmup=1,
    )  # fmt: skip
    rep = MemoryReporter()
    summary = run_pipeline(s, ctx_for(env, tmp_path, rep))
    assert rep.stages[3:5] == ["prune", "recover"]
    report = report_of(env)
    st = report["structured"]
    assert st["latency_table"] == table.to_json() and st["latency_table"]["key"] == key.to_json()
    model = st["latency_model"]
    # the reference is the dense graph timed whole; the blocks are scaled to the student's
    # graph (the same model here: no layers dropped)
    assert model["measured_dense_ms"] > 0
    assert model["dense_ms"] == pytest.approx(model["measured_dense_ms"])
    assert model["measured_student_ms"] == model["measured_dense_ms"]
    # a line through the student's graph at full width and at one head and neuron a layer
    full, low = model["measured_student_ms"], model["measured_minimal_ms"]
    assert low > 0
    blocks = {k: 2000 * (table.latency("attention", h) + table.latency("ffn", n))
              for k, (h, n) in {"full": (key.heads, key.ffn), "low": (1, 1)}.items()}  # fmt: skip
    span = blocks["full"] - blocks["low"]
    scale = (full - low) / span if span > 0 and full > low else 1.0
    assert model["block_scale"] == pytest.approx(scale)
    assert model["fixed_ms"] == pytest.approx(max(full - scale * blocks["full"], 0.0))
    check_steps(st)
    assert [r["recovery_steps"] for r in st["per_step"]] == [3, 3]  # 6 split evenly
    # each step's metrics event: its number and its plan's measured speedup (the webhook's)
    assert [(m["prune_step"], m["speedup"]) for m in rep.step_log] == [
        (k, r["plan_measured_speedup"]) for k, r in enumerate(st["per_step"], 1)
    ]
    # each training stage's last step: fine-tuning (the 6 recovery steps still to come), and
    # one recover stage of 6 steps over both recoveries
    assert [(stage, d["step"], d["total_steps"], d["remaining_steps"])
            for stage, d in rep.telemetry_log] == [("finetune_dense", 4, 4, 6),
                                                   ("recover", 6, 6, 0)]  # fmt: skip
    assert [a["step"] for a in report["pruning"]["applied"]] == [0, 3]
    assert all("primary_metric" in a for a in report["pruning"]["applied"])
    assert report["training_steps"]["recover"] == 6
    check_removed_are_zero(packaged(env, tmp_path / "out"), st["final"])
    measured = report["onnx"]["fp32"]["speedup_vs_dense"]["batch_1"]
    assert st["measured_speedup"] == measured
    assert st["measured_over_predicted"] == pytest.approx(
        measured / st["final"]["predicted_speedup"]
    )
    assert st["measured_over_plan"] == pytest.approx(measured / st["plan_measured_speedup"])
    assert st["plan_measured_speedup"] == st["final"]["plan_measured_speedup"]
    assert [(r["step"], r["round"]) for r in st["plan_rounds"]] == [
        (row["step"], r["round"]) for row in st["per_step"] for r in row["plan_rounds"]
    ]
    assert summary["parameters"] == report["compressed"]["parameters"]
    md = env["artifacts"]["report_md"][0].read_text(encoding="utf-8")
    assert "## Structured pruning" in md and "| step | target | predicted |" in md
    assert "- pruning: structured (heads and neurons) to" in md
    png = env["artifacts"]["plot_structured"]
    assert png[1] == "structured.png" and png[0].read_bytes()[:8] == PNG_SIGNATURE


def _modernbert_env(tmp_path: Path) -> dict[str, Any]:
    folder = write_tiny_encoder(tmp_path / "upload", "modernbert", num_labels=2)
    return make_env(tmp_path, model_dir=folder, n_train=32, n_dev=12)


def _with_table(env: dict[str, Any], tmp_path: Path, s: Any) -> LatencyTable:
    key = key_of(tmp_path / "upload", s)
    table = linear_table(key, head=1e-3, neuron=5e-5, rest=5e-4)
    store(table, env)
    return table


def test_modernbert_steps_allocate_within_the_table_and_resume_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _modernbert_env(tmp_path / "whole")
    s = job(whole, target_speedup=2.5, steps=2)
    table = _with_table(whole, tmp_path / "whole", s)
    table_only(monkeypatch, table)
    run_pipeline(s, ctx_for(whole, tmp_path / "whole", MemoryReporter()))
    st = report_of(whole)["structured"]
    assert st["latency_table"]["key"]["gated"] is True
    check_steps(st)
    lm = structured_plan.LatencyModel(table, 2)
    for row in st["per_step"]:  # the table's own prediction of the reported counts
        assert row["predicted_speedup"] == pytest.approx(
            lm.speedup(row["kept_heads"], row["kept_neurons"])
        )
        for r in row["plan_rounds"]:  # timed as the table predicts: nothing to correct
            assert r["measured_speedup"] == pytest.approx(r["predicted_speedup"])
    check_removed_are_zero(packaged(whole, tmp_path / "whole" / "out"), st["final"])

    env = _modernbert_env(tmp_path / "resumed")
    s2 = s.model_copy(update={"model": str(env["model_id"])})
    _with_table(env, tmp_path / "resumed", s2)
    original, saves = structured.save_step, []

    def save_then_die(*args: Any) -> None:
        original(*args)
        saves.append(1)
        raise RuntimeError("worker died after structured step 1")

    monkeypatch.setattr(structured, "save_step", save_then_die)
    with pytest.raises(RuntimeError, match="step 1"):
        run_pipeline(s2, ctx_for(env, tmp_path / "resumed", MemoryReporter()))
    monkeypatch.setattr(structured, "save_step", original)
    run_pipeline(s2, ctx_for(env, tmp_path / "resumed", MemoryReporter()))
    report = report_of(env)
    assert report["resumed_from"]["stage"] == "structured"
    assert report["resumed_from"]["prune_step"] == 1 and saves == [1]
    again = report["structured"]
    for key in ("kept_heads", "kept_neurons", "kept_head_indices", "predicted_speedup"):
        assert [r[key] for r in again["per_step"]] == [r[key] for r in st["per_step"]]


FIRST_LATENCY_MODEL = ("layers", "dense_ms", "fixed_ms", "fixed_part", "best_speedup")


def first_shape(record: dict[str, Any]) -> dict[str, Any]:
    """A step checkpoint's record as 7ef8c49 wrote it: a latency model without measurements
    or scale, no planning keys."""
    old = {k: v for k, v in record.items() if k != "plan_measurement"}
    old["latency_model"] = {k: record["latency_model"][k] for k in FIRST_LATENCY_MODEL}
    old["per_step"] = [{k: v for k, v in r.items() if not k.startswith("plan_")}
                       for r in record["per_step"]]  # fmt: skip
    return old


def test_a_job_resumed_from_a_first_shape_checkpoint_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step 1's checkpoint written by 7ef8c49's stage; the redelivered job plans step 2 and
    its report (validated when it is written, in the package stage) holds both."""
    env = _modernbert_env(tmp_path)
    s = job(env, target_speedup=2.5, steps=2)
    table_only(monkeypatch, _with_table(env, tmp_path, s))
    original = structured.save_step

    def save_old_then_die(ck: Any, pruned: Any, record: dict[str, Any], ctx: Any) -> None:
        original(ck, pruned, first_shape(record), ctx)
        raise RuntimeError("worker died after structured step 1")

    monkeypatch.setattr(structured, "save_step", save_old_then_die)
    with pytest.raises(RuntimeError, match="step 1"):
        run_pipeline(s, ctx_for(env, tmp_path, MemoryReporter()))
    monkeypatch.setattr(structured, "save_step", original)
    run_pipeline(s, ctx_for(env, tmp_path, MemoryReporter()))
    report = report_of(env)
    assert report["resumed_from"]["prune_step"] == 1
    st = report["structured"]
    assert set(st["latency_model"]) == set(FIRST_LATENCY_MODEL)
    assert "plan_round" not in st["per_step"][0] and st["per_step"][1]["plan_round"] >= 1
    assert {r["step"] for r in st["plan_rounds"]} == {2}
    assert st["final"]["plan_measured_speedup"] == st["per_step"][1]["plan_measured_speedup"]


def test_an_unreachable_target_fails_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(tmp_path, n_train=16, n_dev=8)
    s = job(env, target_speedup=3.0)
    table = linear_table(key_of(tmp_path / "upload", s), head=1e-4, neuron=1e-5, rest=1e-3)
    store(table, env)
    table_only(monkeypatch, table)
    best = structured_plan.LatencyModel(table, 2).best_speedup
    assert best < 3.0
    with pytest.raises(PipelineError) as err:
        run_pipeline(s, ctx_for(env, tmp_path, MemoryReporter()))
    assert err.value.code == "speedup_unreachable"
    assert "pruning.structured.target_speedup 3" in err.value.message
    assert f"{best:.3g}x" in err.value.message


def test_choices_never_exceed_what_a_layer_keeps() -> None:
    model = task_model("bert")
    cal = StructuredCalibration(model)
    for seed in range(2):
        cal.add_batch(random_inputs(model, 4, 16, seed=seed))
    key = LatencyKey.for_host(
        hidden=64, heads=4, ffn=96, gated=False, activation="gelu", batch=1, seq_len=16,
        threads=1,
    )  # fmt: skip
    lm = structured_plan.LatencyModel(linear_table(key, head=1e-3, neuron=1e-5, rest=1e-4), 2)
    now = ([1, 4], [96, 10])
    heads, neurons, loss = structured_plan.choose(cal, lm, 1.2, now)
    assert all(h <= n for h, n in zip(heads, now[0], strict=True))
    assert all(h <= n for h, n in zip(neurons, now[1], strict=True))
    assert lm.speedup(heads, neurons) >= 1.2 * (1 - DP_BOUND) and math.isfinite(loss)
    with pytest.raises(PipelineError, match="target_speedup 50 is out of reach"):
        structured_plan.choose(cal, lm, 50.0, now)


def test_with_layers_dropped_the_dense_model_stays_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # graph seconds are made up from each graph's layer count: real timings of a tiny model are
    # noise-bound (a loaded CI host once measured the 1-layer minimal graph 0.69x the 2-layer one)
    env = make_env(tmp_path, layers=2, n_train=16, n_dev=8)
    s = spec(
        env["model_id"], layers={"keep": 1},
        pruning={"method": "structured",
                 "structured": {"calibration_batches": 2, "target_speedup": 1.2, "steps": 1}},
    )  # fmt: skip
    timed: dict[str, int] = {}

    def seconds(graphs: Any, tok: Any, key: Any, outputs: Any, where: Any, **_: Any) -> Any:
        timed.update({k: len(layer_structures(m)) for k, m in graphs.items()})
        return {"dense": 0.003, "student": 0.002, "minimal": 0.0012}

    class Timer:
        def __init__(self, reference: Any, model: Any, *_: Any, **__: Any) -> None:
            timed["plan_reference"] = len(layer_structures(reference))
            timed["plan_model"] = len(layer_structures(model))

        def __call__(self, heads: Any, neurons: Any) -> float:
            return 1.5

    monkeypatch.setattr(structured, "measured_graphs_seconds", seconds)
    monkeypatch.setattr(
        structured, "cached_latency_table",
        lambda key, folder: linear_table(key, head=1e-4, neuron=1e-6, rest=1e-4),
    )  # fmt: skip
    monkeypatch.setattr(structured, "GraphTimer", Timer)
    run_pipeline(s, ctx_for(env, tmp_path, MemoryReporter()))
    # the 2-layer dense graph is timed apart from the 1-layer student, and each plan against it
    assert timed == {"dense": 2, "student": 1, "minimal": 1, "plan_reference": 2, "plan_model": 1}
    st = report_of(env)["structured"]
    model = st["latency_model"]
    assert model["layers"] == 1
    assert model["measured_dense_ms"] == pytest.approx(3.0)
    assert model["measured_student_ms"] == pytest.approx(2.0)
    assert model["dense_ms"] == pytest.approx(model["measured_dense_ms"])
    assert st["per_step"][0]["plan_measured_speedup"] == pytest.approx(1.5)


@pytest.mark.parametrize("method", ["qat_int8", "none"])
def test_an_int8_target_times_the_student_int8_against_the_dense_fp32_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    from types import SimpleNamespace

    model = task_model("bert")
    layers = len(layer_structures(model))
    seen: dict[str, Any] = {}

    def timed(graphs: Any, tok: Any, key: Any, outputs: Any, where: Any, *, precisions: Any) -> Any:
        seen.update(graphs=graphs, key=key, precisions=precisions)
        return {"dense": 0.04, "student": 0.02, "minimal": 0.004}

    monkeypatch.setattr(structured, "measured_graphs_seconds", timed)
    monkeypatch.setattr(
        structured, "cached_latency_table",
        lambda key, folder: linear_table(key, head=1e-4, neuron=1e-6, rest=1e-4),
    )  # fmt: skip
    loaded = SimpleNamespace(tokenizer=None, task=SimpleNamespace(outputs=()), spec=spec(
        uuid.uuid4(), quantization={"method": method},
        pruning={"method": "structured", "structured": {"precision": "int8"}},
    ))  # fmt: skip
    ctx = SimpleNamespace(settings=SimpleNamespace(work_dir=tmp_path), scratch=tmp_path)
    dense = SimpleNamespace(model=model)
    lm = structured.latency_model(loaded, dense, model, layers, ctx)  # type: ignore[arg-type]
    at = structured_plan.GraphPrecision(int8=True, per_channel=method == "qat_int8")
    assert seen["key"].precision == "int8"
    assert seen["graphs"]["dense"] is model and set(seen["graphs"]) == {
        "dense",
        "student",
        "minimal",
    }
    assert seen["precisions"] == {"student": at, "minimal": at}  # the dense graph stays fp32
    assert (lm.measured_dense, lm.measured_student, lm.measured_minimal) == (0.04, 0.02, 0.004)
    timer = structured.plan_timer(loaded, dense, model, layers, ctx)  # type: ignore[arg-type]
    assert isinstance(timer, structured_measure.GraphTimer) and timer.precision == at
