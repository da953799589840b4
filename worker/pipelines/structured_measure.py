"""Measured planning of structured pruning (ZipLM / SPDY): each step's allocation is built as
a whole graph of exactly its shapes, timed, and re-aimed until its measured speedup is the
step's target.

The latency model (structured_plan.LatencyModel, a line through the student's graph timed at
full width and at one head and neuron a layer) misses in both directions, since latency is not
linear in the kept widths (GEMM efficiency at narrow, odd widths; per-layer fixed costs): on
MiniLM-L6 at 128 tokens, 1 thread, plans for 1.5x, 2x and 3x measured 1.70x, 1.83x and 2.31x.
So, per step (:func:`measured_choice`):

1. the DP solves for an internal target: the latency the calibration map below gives for the
   step's aim (at first the latency model's own line, so the aim itself);
2. a copy of the model keeping exactly those counts, compacted (:func:`shaped_copy`), is
   exported and timed against the full-width reference graph in the same alternating rounds
   (:class:`GraphTimer`): the measured speedup;
3. unless it lies in the step's :class:`Band`, the measured point joins the map and the
   internal target is solved again; at most ``rounds`` rounds, ending early when a plan
   already timed comes back (timing it again tells nothing new).

The band (``StructuredSpec.target_band``) for a target t and ``tolerance``: ``at_least``, t to
t * (1 + tolerance), aimed at its middle, so that the model kept is at least as fast as asked
(with ``around``, t * (1 +- tolerance) aimed at t, structured-2x@3 on MiniLM-L6 / SST-2,
seed 0, kept a plan timed at 1.93x that re-timed quiet at 1.84-1.88x, 2026-12-03).

The calibration map (:class:`CalibrationMap`) is piecewise linear from the latency model's
predicted latency to the measured one, through every measured point: the model's two anchors
(the student's graph at full width and at one head and neuron a layer) and every plan timed so
far, earlier steps' included; monotone (cumulative max in predicted order); beyond its ends,
proportional to the nearest point (one point alone rescales the target by target / measured).
A plan's measured latency is ``dense / measured speedup``, so plans timed apart compare.

The round kept (:func:`pick`): of those measured at least at the band's low end, the least
loss within the band, else the slowest of them; with none that fast, the fastest.
"""

from __future__ import annotations

import itertools
import math
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from app.schemas.pruning_spec import PLAN_TOLERANCE, TargetBand
from worker.pipelines.latency_table import LatencyKey
from worker.pipelines.structured_calibrate import layer_structures
from worker.pipelines.structured_plan import (
    FP32,
    GraphPrecision,
    LatencyModel,
    cpu_copy,
    graph_turn,
    turns_seconds,
)

PLAN_ROUNDS = 4  # plans timed per step at most
FILL = 1e-2  # the weight written into a kept structure that the model has at zero
PLAN_METHOD = (
    "each step's allocation built as a graph of exactly its kept counts (a compacted copy), "
    "timed against the full-width reference in alternating rounds and re-solved from a "
    "piecewise-linear map of predicted to measured latency through every measured point "
    f"until in the target's band (at most {PLAN_ROUNDS} rounds; target_band at_least: target "
    "to target * (1 + tolerance), around: target * (1 +- tolerance)); kept: the least loss "
    "in the band, else the slowest faster than its low end, else the fastest"
)

Counts = tuple[int, ...]
Solve = Callable[[float], tuple[Counts, Counts, float]]  # internal target -> heads, neurons, loss
Timer = Callable[[Sequence[int], Sequence[int]], float]  # kept counts -> measured speedup


@dataclass(frozen=True)
class Band:
    """The measured speedups that meet a step's target, ``low`` to ``high``; the planner aims
    at ``aim``."""

    low: float
    aim: float
    high: float

    @classmethod
    def of(cls, target: float, tolerance: float, rule: TargetBand) -> Band:
        if not 0 <= tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
        if rule == "at_least":
            return cls(target, target * (1 + tolerance / 2), target * (1 + tolerance))
        return cls(target * (1 - tolerance), target, target * (1 + tolerance))

    def __contains__(self, speedup: float) -> bool:
        return self.low <= speedup <= self.high


@dataclass(frozen=True)
class PlanRound:
    round: int  # from 1
    internal_target: float  # the speedup the DP was asked for
    heads: Counts
    neurons: Counts
    loss: float
    predicted_latency: float  # seconds, the latency model's
    predicted_speedup: float
    measured_speedup: float

    def as_dict(self, chosen: bool) -> dict[str, Any]:
        return {
            "round": self.round, "internal_target_speedup": self.internal_target,
            "predicted_speedup": self.predicted_speedup,
            "predicted_latency_ms": 1000 * self.predicted_latency,
            "measured_speedup": self.measured_speedup, "loss": self.loss,
            "kept_heads": list(self.heads), "kept_neurons": list(self.neurons), "chosen": chosen,
        }  # fmt: skip


@dataclass(frozen=True)
class MeasuredPlan:
    target: float
    band: Band
    max_rounds: int
    rounds: tuple[PlanRound, ...]
    chosen: int  # index into rounds
    stopped: str  # within_tolerance, repeated_plan or max_rounds

    @property
    def plan(self) -> PlanRound:
        return self.rounds[self.chosen]

    @property
    def met(self) -> bool:
        return self.plan.measured_speedup >= self.band.low

    def as_row(self) -> dict[str, Any]:
        """The step row's planning keys."""
        return {
            "plan_measured_speedup": self.plan.measured_speedup,
            "plan_internal_target_speedup": self.plan.internal_target,
            "plan_round": self.plan.round, "plan_met": self.met, "plan_stopped": self.stopped,
            "plan_band": [self.band.low, self.band.high],
            "plan_rounds": [r.as_dict(i == self.chosen) for i, r in enumerate(self.rounds)],
        }  # fmt: skip


@dataclass(frozen=True)
class CalibrationMap:
    """Measured latency as a piecewise-linear function of predicted latency (seconds)."""

    points: tuple[tuple[float, float], ...] = ()  # (predicted, measured)

    def with_point(self, predicted: float, measured: float) -> CalibrationMap:
        return CalibrationMap((*self.points, (predicted, measured)))

    def predicted_for(self, measured: float) -> float | None:
        """The predicted latency the map takes to `measured` (None without points)."""
        pts = sorted((p, m) for p, m in self.points if p > 0 and m > 0)
        if not pts:
            return None
        xs = [p for p, _ in pts]
        ys = list(itertools.accumulate((m for _, m in pts), max))
        if measured <= ys[0]:
            return xs[0] * measured / ys[0]
        if measured >= ys[-1]:
            return xs[-1] * measured / ys[-1]
        for (x0, y0), (x1, y1) in itertools.pairwise(zip(xs, ys, strict=True)):
            if y0 <= measured <= y1:
                return x1 if y1 == y0 else x0 + (x1 - x0) * (measured - y0) / (y1 - y0)
        raise AssertionError("unreachable: ys is sorted and brackets measured")


def anchors(lm: LatencyModel) -> list[tuple[float, float]]:
    """The latency model's measured points: the student at full width and at one head and
    neuron a layer (none without the measurements)."""
    if lm.measured_student is None or lm.measured_minimal is None:
        return []
    key, n = lm.table.key, lm.layers
    return [
        (lm.latency([key.heads] * n, [key.ffn] * n), lm.measured_student),
        (lm.latency([1] * n, [1] * n), lm.measured_minimal),
    ]


def prior_points(rows: Iterable[dict[str, Any]], lm: LatencyModel) -> list[tuple[float, float]]:
    """The measured points of earlier steps' rounds (their report rows)."""
    return [
        (r["predicted_latency_ms"] / 1000, lm.dense / r["measured_speedup"])
        for row in rows
        for r in row.get("plan_rounds", ())
    ]


def _internal(cmap: CalibrationMap, lm: LatencyModel, aim: float) -> float:
    """The speedup to ask the DP for, so that the map gives ``dense / aim``: within 1 and
    the latency model's best (a hair under it: float noise of the DP's own sum)."""
    latency = cmap.predicted_for(lm.dense / aim)
    wanted = aim if latency is None else (lm.dense / latency if latency > 0 else math.inf)
    return max(1.0, min(wanted, lm.best_speedup * (1 - 1e-9)))


def pick(rounds: Sequence[PlanRound], band: Band) -> int:
    """The index of the round to keep (see the module docstring)."""
    index = range(len(rounds))
    fast = [i for i in index if rounds[i].measured_speedup >= band.low]
    if not fast:
        return max(index, key=lambda i: rounds[i].measured_speedup)
    inside = [i for i in fast if rounds[i].measured_speedup in band]
    if inside:
        return min(inside, key=lambda i: (rounds[i].loss, i))
    return min(fast, key=lambda i: (rounds[i].measured_speedup, i))


def measured_choice(
    solve: Solve, lm: LatencyModel, target: float, timer: Timer, *,
    prior: Sequence[tuple[float, float]] = (), rounds: int = PLAN_ROUNDS,
    tolerance: float = PLAN_TOLERANCE, rule: TargetBand = "at_least",
) -> MeasuredPlan:  # fmt: skip
    """The plan for `target` whose speedup was measured (`timer`), re-solved (`solve`) from
    the calibration map of `lm`'s anchors, the `prior` points and each round's, until one
    lies in the `rule`'s band (see the module docstring)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    band = Band.of(target, tolerance, rule)
    cmap = CalibrationMap((*anchors(lm), *prior))
    done: list[PlanRound] = []
    stopped = "max_rounds"
    internal = _internal(cmap, lm, band.aim)
    for r in range(1, rounds + 1):
        heads, neurons, loss = solve(internal)
        heads, neurons = tuple(heads), tuple(neurons)
        if any(p.heads == heads and p.neurons == neurons for p in done):
            stopped = "repeated_plan"
            break
        measured = float(timer(heads, neurons))
        if not (math.isfinite(measured) and measured > 0):
            raise ValueError(f"the timer measured a speedup of {measured}")
        predicted = lm.latency(heads, neurons)
        speedup = lm.dense / predicted if predicted > 0 else math.inf
        done.append(PlanRound(r, internal, heads, neurons, loss, predicted, speedup, measured))
        if measured in band:
            stopped = "within_tolerance"
            break
        cmap = cmap.with_point(predicted, lm.dense / measured)
        internal = _internal(cmap, lm, band.aim)
    return MeasuredPlan(target, band, rounds, tuple(done), pick(done, band), stopped)


def _first(live: Tensor, count: int) -> Tensor:
    """A mask keeping `count` structures, the live ones first (by index), then the others."""
    order = torch.cat([live.nonzero().flatten(), (~live).nonzero().flatten()])
    keep = torch.zeros_like(live)
    keep[order[:count]] = True
    return keep


def _fill_zero(t: Tensor) -> None:
    """Write FILL into `t` where it is all zero (a kept structure the model has at zero)."""
    if not bool(t.ne(0).any()):
        t.fill_(FILL)


@torch.no_grad()
def shaped_copy(model: nn.Module, heads: Sequence[int], neurons: Sequence[int]) -> nn.Module:
    """A CPU copy of `model` whose layer i keeps `heads[i]` heads and `neurons[i]` neurons
    (the live ones first) as compaction reads them (the others zero on both sides, a kept one
    the model has at zero filled in), for :func:`compact_structures` and timing: only its
    shapes mean anything. Kept 0 compacts to one silent head or neuron, as the export does.
    The copy is made on the CPU (:func:`cpu_copy`): no second copy of a model on a GPU there,
    planning round after planning round."""
    out = cpu_copy(model)
    layers = layer_structures(out)
    if len(heads) != len(layers) or len(neurons) != len(layers):
        raise ValueError(f"need {len(layers)} head and neuron counts, got {len(heads)}, "
                         f"{len(neurons)}")  # fmt: skip
    for s, h, n in zip(layers, heads, neurons, strict=True):
        if not (0 <= h <= s.heads and 0 <= n <= s.neurons):
            raise ValueError(f"layer {s.index} keeps {h} of {s.heads} heads, {n} of "
                             f"{s.neurons} neurons")  # fmt: skip
        cols = s.output.weight.view(s.output.out_features, s.heads, s.head_dim)
        keep = _first(cols.ne(0).any(dim=2).any(dim=0), h)
        cols[:, ~keep] = 0.0
        for i in keep.nonzero().flatten().tolist():
            _fill_zero(cols[:, i])
        parts = 2 if s.gated else 1
        rows = s.fc1.weight.view(parts, s.neurons, s.fc1.in_features)
        live = s.fc2.weight.ne(0).any(dim=0) & rows.ne(0).any(dim=2).all(dim=0)
        keep = _first(live, n)
        rows[:, ~keep] = 0.0
        if s.fc1.bias is not None:
            s.fc1.bias.view(parts, s.neurons)[:, ~keep] = 0.0
        s.fc2.weight[:, ~keep] = 0.0
        for j in keep.nonzero().flatten().tolist():
            _fill_zero(s.fc2.weight[:, j])
            for part in range(parts):
                _fill_zero(rows[part, j])
    return out


def minimal_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` with every layer down to one head and one neuron (the latency
    model's low anchor)."""
    n = len(layer_structures(model))
    return shaped_copy(model, [1] * n, [1] * n)


class GraphTimer:
    """A :data:`Timer` of plans of `model`: the plan's compacted copy against `reference`
    (the full-width graph: the dense model, fp32), both exported to ONNX under `folder` (the
    plan at `precision`) and timed at the key's shapes in the same alternating rounds; the
    reference exported once, each plan's files removed once timed. ``timings`` holds each
    call's seconds."""

    def __init__(
        self, reference: nn.Module, model: nn.Module, tokenizer: Any, key: LatencyKey,
        outputs: Any, folder: Path, *, rounds: int = 7, runs: int = 3,
        precision: GraphPrecision = FP32,
    ) -> None:  # fmt: skip
        self.reference, self.model, self.tokenizer, self.key = reference, model, tokenizer, key
        self.outputs, self.folder, self.rounds, self.runs = outputs, folder, rounds, runs
        self.precision = precision
        self._turn: Any = None
        self.timings: list[dict[str, float]] = []

    def __call__(self, heads: Sequence[int], neurons: Sequence[int]) -> float:
        from worker.pipelines.compaction import compact_structures

        if self._turn is None:
            self._turn = self._graph(self.reference, "reference", FP32)
        where = f"plan-{len(self.timings) + 1}"
        small, _ = compact_structures(shaped_copy(self.model, heads, neurons))
        try:
            plan = self._graph(small, where, self.precision)
            got = turns_seconds({"reference": self._turn, "plan": plan}, self.rounds)
        finally:
            shutil.rmtree(self.folder / where, ignore_errors=True)
        self.timings.append(got)
        return got["reference"] / got["plan"]

    def _graph(self, model: nn.Module, name: str, precision: GraphPrecision) -> Any:
        return graph_turn(model, self.tokenizer, self.key, self.outputs, self.folder / name,
                          self.runs, precision)  # fmt: skip
