"""The measured plan of structured pruning (structured_measure): the search converges on a
timer that is not linear in the kept widths, in either direction; it stops after its rounds
and on a repeated plan; the round kept is never slower than its band allows when a round
that fast was timed (at_least: never under the target); the report section holds the
rounds; the shaped copy compacts to exactly the counts asked for; the graph timer exports the
reference once."""

from __future__ import annotations

import copy
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from app.schemas.pruning_spec import PLAN_TOLERANCE, TargetBand
from tests.worker.pipelines.family_models import task_model
from worker.pipelines.compaction import compact_structures
from worker.pipelines.latency_table import BlockLatency, LatencyKey, LatencyTable, layer_options
from worker.pipelines.structured_calibrate import layer_structures
from worker.pipelines.structured_measure import (
    PLAN_ROUNDS,
    Band,
    CalibrationMap,
    GraphTimer,
    PlanRound,
    measured_choice,
    pick,
    prior_points,
    shaped_copy,
)
from worker.pipelines.structured_plan import (
    GraphPrecision,
    LatencyModel,
    choose_from,
    cpu_copy,
    report_section,
)

LAYERS, HEADS, FFN = 4, 12, 128
TOL = PLAN_TOLERANCE
KEY = LatencyKey(
    cpu="test", int8_instructions=None, hidden=384, heads=HEADS, ffn=FFN, gated=False,
    activation="gelu", batch=1, seq_len=128, threads=1,
)  # fmt: skip
COUNTS_H, COUNTS_F = tuple(range(HEADS + 1)), tuple(range(FFN + 1))
TABLE = LatencyTable(  # seconds linear in the kept count: what the latency model believes
    KEY, BlockLatency(COUNTS_H, tuple(1e-4 * k for k in COUNTS_H)),
    BlockLatency(COUNTS_F, tuple(1e-5 * k for k in COUNTS_F)), 1e-5, rounds=1, iters=1,
)  # fmt: skip
OPTIONS = layer_options(  # layers differ in how much their structures matter
    TABLE,
    [[(i + 1) * ((HEADS - k) / HEADS) ** 2 for k in COUNTS_H] for i in range(LAYERS)],
    [[(LAYERS - i) * ((FFN - k) / FFN) ** 2 for k in COUNTS_F] for i in range(LAYERS)],
    neuron_step=4,
)
FULL = ([HEADS] * LAYERS, [FFN] * LAYERS)
RULES: tuple[TargetBand, ...] = ("at_least", "around")


def solver(lm: LatencyModel) -> Any:
    return lambda target: choose_from(OPTIONS, lm, target, FULL)


def concave(heads: Sequence[int], neurons: Sequence[int]) -> float:
    """A graph's 'true' seconds: per-layer fixed costs and narrow widths relatively slow."""
    return 2e-3 + sum(
        3e-4 + 4e-4 * max(h, 1) ** 0.7 + 6e-5 * max(n, 1) ** 0.7
        for h, n in zip(heads, neurons, strict=True)
    )


def anchored(truth: Any) -> LatencyModel:
    """The latency model's line through the true graph at full width and at one head and
    neuron a layer (as the stage measures it)."""
    full = truth(*FULL)
    return LatencyModel(TABLE, LAYERS, full, full, truth([1] * LAYERS, [1] * LAYERS))


class Timer:
    """A fake timer: `speedup(heads, neurons)`, its calls counted."""

    def __init__(self, speedup: Any) -> None:
        self.speedup, self.calls = speedup, 0

    def __call__(self, heads: Sequence[int], neurons: Sequence[int]) -> float:
        self.calls += 1
        return float(self.speedup(heads, neurons))


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("target", [1.5, 2.0, 2.5])
def test_the_search_converges_where_latency_is_concave_in_width(
    target: float, rule: TargetBand
) -> None:
    lm = anchored(concave)
    timer = Timer(lambda h, n: concave(*FULL) / concave(h, n))
    plan = measured_choice(solver(lm), lm, target, timer, rule=rule)
    band = Band.of(target, TOL, rule)
    first = plan.rounds[0]
    assert first.internal_target == pytest.approx(band.aim)  # the map starts as the line
    assert first.measured_speedup < band.low  # the line alone misses
    assert plan.stopped == "within_tolerance" and timer.calls == len(plan.rounds) <= PLAN_ROUNDS
    assert plan.plan.measured_speedup in band and plan.met
    assert plan.plan.internal_target > band.aim  # aimed past the target to land on it
    assert plan.plan.measured_speedup == pytest.approx(
        concave(*FULL) / concave(plan.plan.heads, plan.plan.neurons)
    )


@pytest.mark.parametrize("rule", RULES)
def test_the_search_converges_where_the_line_is_too_slow(rule: TargetBand) -> None:
    lm = LatencyModel(TABLE, LAYERS)  # unanchored: the first round rescales
    timer = Timer(lambda h, n: lm.speedup(h, n) ** 1.3)
    plan = measured_choice(solver(lm), lm, 2.0, timer, rule=rule)
    band = Band.of(2.0, TOL, rule)
    assert plan.rounds[0].measured_speedup > band.high  # faster than asked: loss wasted
    assert plan.stopped == "within_tolerance" and len(plan.rounds) > 1
    assert plan.plan.measured_speedup in band
    assert plan.plan.internal_target < band.aim and plan.plan.loss < plan.rounds[0].loss
    for r in plan.rounds:  # the DP meets each internal target, as the latency model sees it
        assert r.predicted_speedup >= r.internal_target * (1 - 1e-9)


def test_it_stops_after_its_rounds() -> None:
    lm = LatencyModel(TABLE, LAYERS)
    assert lm.best_speedup > 10
    stuck = Timer(lambda h, n: 1.01)  # pruning never pays
    plan = measured_choice(solver(lm), lm, 1.5, stuck, rounds=3)
    assert plan.stopped == "max_rounds" and stuck.calls == 3 and len(plan.rounds) == 3
    assert [r.round for r in plan.rounds] == [1, 2, 3]
    targets = [r.internal_target for r in plan.rounds]
    assert targets == sorted(targets) and targets[0] < targets[-1]  # pushed ever harder
    assert not plan.met
    again = Timer(lambda h, n: 1.01)
    assert len(measured_choice(solver(lm), lm, 1.5, again).rounds) == PLAN_ROUNDS


def test_a_plan_timed_twice_ends_the_search() -> None:
    lm = LatencyModel(TABLE, LAYERS)
    plan = measured_choice(solver(lm), lm, 100.0, Timer(lambda h, n: 2.0))  # out of reach
    assert plan.stopped == "repeated_plan" and len(plan.rounds) == 1
    assert plan.plan.predicted_speedup == pytest.approx(lm.best_speedup)  # the fastest


def _round(i: int, measured: float, loss: float) -> PlanRound:
    return PlanRound(i + 1, 2.0, (1,), (1,), loss, 1e-3, 2.0, measured)


def test_the_bands() -> None:
    assert Band.of(2.0, 0.05, "at_least") == Band(2.0, 2.05, pytest.approx(2.1))
    assert Band.of(2.0, 0.05, "around") == Band(1.9, 2.0, 2.1)
    assert 2.0 in Band.of(2.0, 0.05, "at_least") and 1.99 not in Band.of(2.0, 0.05, "at_least")
    assert 1.95 in Band.of(2.0, 0.05, "around") and 2.11 not in Band.of(2.0, 0.05, "around")
    with pytest.raises(ValueError, match="tolerance"):
        Band.of(2.0, 1.0, "at_least")


@pytest.mark.parametrize("rule", RULES)
def test_the_round_kept_prefers_the_band_then_the_closest_above(rule: TargetBand) -> None:
    def chosen(measured: list[float], losses: list[float]) -> int:
        rounds = [_round(i, m, x) for i, (m, x) in enumerate(zip(measured, losses, strict=True))]
        return pick(rounds, Band.of(1.5, TOL, rule))

    # in the band: the least loss, however near the target
    assert chosen([1.45, 1.55, 1.9, 1.2], [3.0, 1.0, 9.0, 0.1]) == 1
    # 1.45 >= 1.5 * 0.95, in the band around 1.5; under 1.5, out of the band at least 1.5
    assert chosen([1.45, 1.55], [1.0, 3.0]) == (0 if rule == "around" else 1)
    # none in the band: the least overshoot, never a slower one
    assert chosen([1.9, 1.7, 1.2], [5.0, 4.0, 0.1]) == 1
    # none fast enough: the fastest
    assert chosen([1.2, 1.3, 1.1], [0.1, 0.2, 0.3]) == 1


@pytest.mark.parametrize("rule", RULES)
def test_it_never_keeps_a_slow_plan_when_a_fast_one_was_timed(rule: TargetBand) -> None:
    lm = LatencyModel(TABLE, LAYERS)
    rng = random.Random(0)
    low = Band.of(2.0, TOL, rule).low
    assert low == (2.0 if rule == "at_least" else 2.0 * (1 - TOL))
    for _ in range(20):
        values = iter([rng.uniform(1.0, 3.0) for _ in range(PLAN_ROUNDS)])
        timer = Timer(lambda h, n, v=values: next(v))
        plan = measured_choice(solver(lm), lm, 2.0, timer, rule=rule)
        measured = [r.measured_speedup for r in plan.rounds]
        if any(m >= low for m in measured):
            assert plan.plan.measured_speedup >= low
        else:
            assert plan.plan.measured_speedup == max(measured)
    # scripted: only the first round is fast enough, the later ones are too slow
    script = iter([2.6, 1.4, 1.5, 1.6])
    plan = measured_choice(solver(lm), lm, 2.0, Timer(lambda h, n: next(script)))
    assert plan.chosen == 0 and plan.plan.measured_speedup == 2.6 and len(plan.rounds) > 1


def test_the_map_is_piecewise_linear_monotone_and_proportional_outside() -> None:
    assert CalibrationMap().predicted_for(1.0) is None
    one = CalibrationMap(((2.0, 4.0),))
    assert one.predicted_for(3.0) == pytest.approx(1.5)  # rescaled: target / measured
    cmap = CalibrationMap(((1.0, 1.0), (3.0, 2.0), (2.0, 2.5), (4.0, 5.0)))
    # by predicted: 1 -> 1, 2 -> 2.5, 3 -> 2 (raised to 2.5: monotone), 4 -> 5
    assert cmap.predicted_for(1.75) == pytest.approx(1.5)
    assert cmap.predicted_for(2.5) == pytest.approx(2.0)
    assert cmap.predicted_for(3.75) == pytest.approx(3.5)
    assert cmap.predicted_for(10.0) == pytest.approx(8.0) and cmap.predicted_for(0.5) == 0.5


def test_earlier_steps_points_start_the_next_step_nearer() -> None:
    lm = anchored(concave)
    timer = Timer(lambda h, n: concave(*FULL) / concave(h, n))
    first = measured_choice(solver(lm), lm, 1.8, timer)
    rows = [{"step": 1, **first.as_row()}]
    prior = prior_points(rows, lm)
    assert len(prior) == len(first.rounds)
    cold = measured_choice(solver(lm), lm, 2.0, timer)
    warm = measured_choice(solver(lm), lm, 2.0, timer, prior=prior)
    aim = Band.of(2.0, TOL, "at_least").aim  # the default rule's
    assert warm.rounds[0].internal_target > cold.rounds[0].internal_target == pytest.approx(aim)
    assert abs(warm.rounds[0].measured_speedup / aim - 1) < abs(
        cold.rounds[0].measured_speedup / aim - 1
    )


def test_the_report_section_holds_every_round() -> None:
    lm = anchored(concave)
    timer = Timer(lambda h, n: concave(*FULL) / concave(h, n))
    rows = [{"step": k, **measured_choice(solver(lm), lm, t, timer).as_row()}
            for k, t in ((1, 1.4), (2, 2.0))]  # fmt: skip
    planned = rows[-1]["plan_measured_speedup"]
    record = {
        "latency_table": TABLE.to_json(), "per_step": rows,
        "final": {"predicted_speedup": 2.1, "plan_measured_speedup": planned},
    }  # fmt: skip
    onnx = {"fp32": {"speedup_vs_dense": {"batch_1": 1.9}}}
    section = report_section(record, onnx)
    assert section["measured_speedup"] == 1.9
    assert section["measured_over_predicted"] == pytest.approx(1.9 / 2.1)
    assert section["plan_measured_speedup"] == planned
    assert section["measured_over_plan"] == pytest.approx(1.9 / planned)
    flat = section["plan_rounds"]
    assert [(r["step"], r["round"]) for r in flat] == [
        (row["step"], r["round"]) for row in rows for r in row["plan_rounds"]
    ]
    assert all(set(r) == {"step", "round", "internal_target_speedup", "predicted_speedup",
                          "measured_speedup", "chosen"} for r in flat)  # fmt: skip
    assert sum(r["chosen"] for r in flat) == 2
    chosen = next(r for r in rows[-1]["plan_rounds"] if r["chosen"])
    assert chosen["measured_speedup"] == planned and chosen["round"] == rows[-1]["plan_round"]
    old = {**record, "per_step": [{"step": 1}], "final": {"predicted_speedup": 2.1}}
    assert report_section(old, None)["plan_rounds"] == []  # a record from before planning
    assert report_section(old, None)["measured_over_plan"] is None
    assert section["precision"] == "fp32"


def test_an_int8_target_is_measured_on_the_int8_file() -> None:
    table = LatencyTable(replace(KEY, precision="int8"), TABLE.attention, TABLE.ffn, TABLE.rest,
                         rounds=1, iters=1)  # fmt: skip
    record = {"latency_table": table.to_json(), "per_step": [],
              "final": {"predicted_speedup": 8.0}}  # fmt: skip
    onnx = {"fp32": {"speedup_vs_dense": {"batch_1": 3.1}},
            "int8": {"speedup_vs_dense": {"batch_1": 7.6}}}  # fmt: skip
    section = report_section(record, onnx)
    assert section["precision"] == "int8" and section["measured_speedup"] == 7.6
    assert section["measured_over_predicted"] == pytest.approx(7.6 / 8.0)


def _zero_some(model: Any) -> None:
    """Heads 0 and 1 of layer 0 and its first 10 neurons removed (as a held mask leaves them)."""
    s = layer_structures(model)[0]
    with torch.no_grad():
        s.output.weight[:, : 2 * s.head_dim] = 0.0
        s.fc2.weight[:, :10] = 0.0
        s.fc1.weight.view(2 if s.gated else 1, s.neurons, -1)[:, :10] = 0.0


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_the_shaped_copy_compacts_to_the_counts(family: str) -> None:
    model = task_model(family)
    _zero_some(model)
    layers = layer_structures(model)
    tops = [(s.heads, s.neurons) for s in layers]
    picks = [([0, tops[1][0]], [tops[0][1], 0]), ([tops[0][0], 1], [5, tops[1][1] - 3])]
    for heads, neurons in picks:  # layer 0 keeps its zeroed heads and neurons when asked
        small, summary = compact_structures(shaped_copy(model, heads, neurons))
        assert summary["heads_per_layer"] == heads  # live heads (0: one silent head in the graph)
        assert [x["kept"] for x in summary["layers"]] == [max(n, 1) for n in neurons]
        shaped = layer_structures(small)
        assert [s.heads for s in shaped] == [max(h, 1) for h in heads]
        assert [s.neurons for s in shaped] == [max(n, 1) for n in neurons]
    s = layer_structures(shaped_copy(model, [1, 1], [1, 1]))[0]  # the live ones first
    assert bool(s.output.weight[:, 2 * s.head_dim : 3 * s.head_dim].ne(0).any())
    assert not bool(s.output.weight[:, : 2 * s.head_dim].ne(0).any())
    assert bool(s.fc2.weight[:, 10].ne(0).any()) and int(s.fc2.weight.ne(0).any(0).sum()) == 1
    assert layer_structures(model)[0].heads == tops[0][0]  # the model itself untouched
    with pytest.raises(ValueError, match="keeps"):
        shaped_copy(model, [tops[0][0] + 1, 1], [1, 1])


@pytest.mark.usefixtures("one_thread")
def test_the_graph_timer_exports_the_reference_once(
    tiny_model: Any, tokenizer: Any, tmp_path: Path
) -> None:
    from worker.pipelines.export import CLASSIFIER_OUTPUTS

    model = tiny_model.train()
    layers = layer_structures(model)
    key = LatencyKey(
        cpu="test", int8_instructions=None, hidden=layers[0].heads * layers[0].head_dim,
        heads=layers[0].heads, ffn=layers[0].neurons, gated=False, activation="gelu",
        batch=1, seq_len=16, threads=1,
    )  # fmt: skip
    timer = GraphTimer(model, model, tokenizer, key, CLASSIFIER_OUTPUTS, tmp_path, rounds=2,
                       runs=2)  # fmt: skip
    n = len(layers)
    got = [timer([1] * n, [1] * n), timer([s.heads for s in layers], [s.neurons for s in layers])]
    assert all(math.isfinite(g) and g > 0 for g in got)
    assert [t["reference"] / t["plan"] for t in timer.timings] == got
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.onnx")) == [
        "reference/model.onnx"
    ]  # plans' graphs removed once timed
    assert model.training  # its mode as it was


@pytest.mark.usefixtures("one_thread")
def test_an_int8_graph_timer_times_the_plan_quantized_against_the_fp32_reference(
    tiny_model: Any, tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnx

    from worker.pipelines import export as ex
    from worker.pipelines.export import CLASSIFIER_OUTPUTS

    opened: dict[str, set[str]] = {}
    open_session = ex.open_session

    def recording(path: Path, **kw: Any) -> Any:
        ops = {n.op_type for n in onnx.load(str(path)).graph.node}
        opened[Path(path).relative_to(tmp_path).as_posix()] = ops
        return open_session(path, **kw)

    monkeypatch.setattr(ex, "open_session", recording)
    model = tiny_model.eval()
    layers = layer_structures(model)
    key = LatencyKey(
        cpu="test", int8_instructions=None, hidden=layers[0].heads * layers[0].head_dim,
        heads=layers[0].heads, ffn=layers[0].neurons, gated=False, activation="gelu",
        batch=1, seq_len=16, threads=1, precision="int8",
    )  # fmt: skip
    timer = GraphTimer(model, model, tokenizer, key, CLASSIFIER_OUTPUTS, tmp_path, rounds=2,
                       runs=2, precision=GraphPrecision(int8=True))  # fmt: skip
    n = len(layers)
    got = timer([1] * n, [1] * n)
    assert math.isfinite(got) and got > 0
    assert sorted(opened) == ["plan-1/model-int8.onnx", "reference/model.onnx"]
    assert "MatMulInteger" in opened["plan-1/model-int8.onnx"]
    assert "MatMulInteger" not in opened["reference/model.onnx"]


class Tied(torch.nn.Module):
    """Two layers sharing one weight, a buffer, a frozen parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 4)
        self.b = torch.nn.Linear(4, 4)
        self.b.weight = self.a.weight
        self.register_buffer("scale", torch.full((4,), 2.0))
        self.frozen = torch.nn.Parameter(torch.ones(3), requires_grad=False)


def _no_tensor_deepcopy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tensor deep-copied (as `copy.deepcopy(model)` does, where the model lives) fails."""

    def refuse(self: Any, memo: Any) -> Any:
        raise AssertionError("a tensor was deep-copied on its device")

    monkeypatch.setattr(torch.Tensor, "__deepcopy__", refuse)
    monkeypatch.setattr(torch.nn.Parameter, "__deepcopy__", refuse)


def test_the_cpu_copy_copies_every_tensor_straight_to_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = Tied().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _no_tensor_deepcopy(monkeypatch)
    with pytest.raises(AssertionError, match="deep-copied"):
        copy.deepcopy(model)  # what the copy used to start from
    out = cpu_copy(model)
    assert isinstance(out, Tied) and out.training
    assert out.b.weight is out.a.weight  # shared stays shared
    assert isinstance(out.frozen, torch.nn.Parameter) and not out.frozen.requires_grad
    assert out.a.weight.requires_grad
    got = out.state_dict()
    assert set(got) == set(before) and all(torch.equal(got[k], before[k]) for k in before)
    ours = {t.data_ptr() for t in itertools.chain(model.parameters(), model.buffers())}
    assert not ours & {t.data_ptr() for t in itertools.chain(out.parameters(), out.buffers())}
    with torch.no_grad():
        out.a.weight.zero_()
        out.get_buffer("scale").zero_()
    assert all(torch.equal(model.state_dict()[k], before[k]) for k in before)


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_the_shaped_copy_leaves_the_model_alone_and_copies_no_tensor_in_place(
    family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = task_model(family)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _no_tensor_deepcopy(monkeypatch)
    small = shaped_copy(model, [1, 1], [1, 1])
    assert all(torch.equal(model.state_dict()[k], before[k]) for k in before)
    assert all(p.device.type == "cpu" for p in small.parameters())
    layers = layer_structures(model)
    full = shaped_copy(model, [s.heads for s in layers], [s.neurons for s in layers])
    got = full.state_dict()  # every structure kept (none of the model's is zero): the same
    assert set(got) == set(before) and all(torch.equal(got[k], before[k]) for k in before)
