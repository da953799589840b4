"""Measured latency of one encoder layer's prunable blocks at every kept count (ZipLM's table).

For each kept count the block is built at that width as a small torch module (attention: Q, K,
V projections hidden -> k*d, eager scaled dot-product softmax attention with an additive mask
input, output projection k*d -> hidden; FFN: hidden -> n (2n gated, act(first half) * gate),
act, n -> hidden), exported as the model export does (TorchScript exporter, opset 17, dynamic
batch and sequence axes; int8 by the same dynamic quantization) and timed in ONNX Runtime at
the key's batch, length and threads, in rounds that take every width in turn (so a slowdown of
the machine lands on all alike); each count's value is the median of its runs. Kept 0 costs 0
(the block is removed: the residual alone). ``rest`` is the layer's non-prunable part (its two
residual adds and LayerNorms). Counts between grid points are interpolated linearly on the
monotone (cumulative max) medians; the raw medians are kept alongside.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import statistics
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from worker.compression.allocation import Allocation, LayerOption

log = logging.getLogger(__name__)

VERSION = 1
RUNTIME = "onnxruntime-cpu"
Kind = Literal["attention", "ffn"]
KINDS: tuple[Kind, ...] = ("attention", "ffn")


@dataclass(frozen=True)
class LatencyKey:
    """What a latency table depends on: runtime, CPU, shapes and threads."""

    cpu: str
    int8_instructions: tuple[str, ...] | None
    hidden: int
    heads: int
    ffn: int
    gated: bool
    activation: str  # transformers' ACT2FN name: gelu, gelu_new, relu, silu, ...
    batch: int
    seq_len: int
    threads: int
    precision: Literal["fp32", "int8"] = "fp32"
    runtime: str = RUNTIME

    def __post_init__(self) -> None:
        for name in ("hidden", "heads", "ffn", "batch", "seq_len", "threads"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"LatencyKey.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ValueError(f"LatencyKey.hidden {self.hidden} is not a multiple of heads")
        if self.runtime != RUNTIME:
            raise ValueError(f"LatencyKey.runtime must be {RUNTIME!r}, got {self.runtime!r}")
        if self.precision not in ("fp32", "int8"):
            raise ValueError(f"LatencyKey.precision must be fp32 or int8, not {self.precision!r}")

    @classmethod
    def for_host(cls, **shapes: Any) -> LatencyKey:
        """The key on this machine (model name and int8 flags from host.cpu_info)."""
        from worker.pipelines.host import cpu_info

        info = cpu_info(int(shapes["threads"]))
        found = info["int8_instructions"]
        return cls(
            cpu=info["model"], int8_instructions=None if found is None else tuple(found), **shapes
        )

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def width(self, kind: Kind) -> int:
        return self.heads if kind == "attention" else self.ffn

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["int8_instructions"] = (
            None if self.int8_instructions is None else list(self.int8_instructions)
        )
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatencyKey:
        flags = data.get("int8_instructions")
        return cls(**{**data, "int8_instructions": None if flags is None else tuple(flags)})

    def digest(self) -> str:
        text = json.dumps({"version": VERSION, **self.to_json()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class BlockLatency:
    """Seconds per kept count of one block kind: ``counts`` ascending from 0 to the full
    width, ``raw`` the measured medians (0 at kept 0)."""

    counts: tuple[int, ...]
    raw: tuple[float, ...]

    @property
    def monotone(self) -> tuple[float, ...]:
        return tuple(itertools.accumulate(self.raw, max))

    def at(self, kept: int) -> float:
        """Linear interpolation of the monotone medians at ``kept``."""
        if not 0 <= kept <= self.counts[-1]:
            raise ValueError(f"kept must be in [0, {self.counts[-1]}], got {kept}")
        values, counts = self.monotone, self.counts
        i = next(i for i, c in enumerate(counts) if c >= kept)
        if counts[i] == kept:
            return values[i]
        lo, hi = counts[i - 1], counts[i]
        return values[i - 1] + (values[i] - values[i - 1]) * (kept - lo) / (hi - lo)


@dataclass(frozen=True)
class LatencyTable:
    key: LatencyKey
    attention: BlockLatency
    ffn: BlockLatency
    rest: float  # seconds: one layer's residual adds and LayerNorms (not prunable)
    rounds: int
    iters: int

    def block(self, kind: Kind) -> BlockLatency:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        return self.attention if kind == "attention" else self.ffn

    def latency(self, kind: Kind, kept: int) -> float:
        return self.block(kind).at(kept)

    @property
    def dense_layer(self) -> float:
        """One unpruned layer: both blocks at full width plus the rest."""
        return self.attention.at(self.key.heads) + self.ffn.at(self.key.ffn) + self.rest

    def to_json(self) -> dict[str, Any]:
        blocks = {
            k: {"counts": list(b.counts), "raw": list(b.raw), "monotone": list(b.monotone)}
            for k, b in (("attention", self.attention), ("ffn", self.ffn))
        }
        return {
            "version": VERSION,
            "key": self.key.to_json(),
            **blocks,
            "rest": self.rest,
            "rounds": self.rounds,
            "iters": self.iters,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatencyTable:
        if data.get("version") != VERSION:
            raise ValueError(f"latency table version {data.get('version')} is not {VERSION}")
        blocks = {k: BlockLatency(tuple(data[k]["counts"]), tuple(data[k]["raw"])) for k in KINDS}
        return cls(
            key=LatencyKey.from_json(data["key"]),
            **blocks,
            rest=float(data["rest"]),
            rounds=int(data["rounds"]),
            iters=int(data["iters"]),
        )


def _activation(name: str) -> Callable[[Tensor], Tensor]:
    from transformers.activations import ACT2FN

    try:
        act: Callable[[Tensor], Tensor] = ACT2FN[name]
    except KeyError:
        raise ValueError(f"activation {name!r} is not a transformers activation name") from None
    return act


class AttentionBlock(nn.Module):
    """Self-attention with ``kept`` heads of ``head_dim``; ``mask`` is additive (b, 1, 1, s)."""

    def __init__(self, hidden: int, kept: int, head_dim: int) -> None:
        super().__init__()
        self.kept, self.head_dim, width = kept, head_dim, kept * head_dim
        self.query, self.key, self.value = (nn.Linear(hidden, width) for _ in range(3))
        self.output = nn.Linear(width, hidden)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, s = x.shape[0], x.shape[1]

        def heads(t: Tensor) -> Tensor:
            return t.view(b, s, self.kept, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = torch.matmul(q, k.transpose(2, 3)) * self.head_dim**-0.5 + mask
        ctx = torch.matmul(scores.softmax(dim=-1), v).transpose(1, 2)
        return self.output(ctx.reshape(b, s, self.kept * self.head_dim))  # type: ignore[no-any-return]


class FfnBlock(nn.Module):
    """fc2(act(fc1 x)), or fc2(act(u) * g) with (u, g) the halves of fc1 x when gated."""

    def __init__(self, hidden: int, kept: int, activation: str, gated: bool) -> None:
        super().__init__()
        self.gated, self.act = gated, _activation(activation)
        self.fc1 = nn.Linear(hidden, 2 * kept if gated else kept)
        self.fc2 = nn.Linear(kept, hidden)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc1(x)
        if self.gated:
            u, g = h.chunk(2, dim=-1)
            return self.fc2(self.act(u) * g)  # type: ignore[no-any-return]
        return self.fc2(self.act(h))  # type: ignore[no-any-return]


class RestBlock(nn.Module):
    """A layer's non-prunable part: LayerNorm(x + a), then LayerNorm(. + f)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)

    def forward(self, x: Tensor, a: Tensor, f: Tensor) -> Tensor:
        return self.ln2(self.ln1(x + a) + f)  # type: ignore[no-any-return]


Block = Kind | Literal["rest"]


def block_module(key: LatencyKey, kind: Block, kept: int) -> nn.Module:
    if kind == "attention":
        return AttentionBlock(key.hidden, kept, key.head_dim).eval()
    if kind == "ffn":
        return FfnBlock(key.hidden, kept, key.activation, key.gated).eval()
    return RestBlock(key.hidden).eval()


def block_inputs(key: LatencyKey, kind: Block, *, seed: int = 0) -> dict[str, Tensor]:
    """Random float32 inputs at the key's batch and length (the mask all-visible)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(key.batch, key.seq_len, key.hidden, generator=gen)
    if kind == "attention":
        return {"x": x, "mask": torch.zeros(key.batch, 1, 1, key.seq_len)}
    if kind == "ffn":
        return {"x": x}
    return {"x": x, "a": torch.randn_like(x), "f": torch.randn_like(x)}


def export_block(module: nn.Module, inputs: dict[str, Tensor], dest: Path, *, int8: bool) -> Path:
    """ONNX export as worker.pipelines.export does it (int8: its dynamic quantization)."""
    import warnings

    from worker.pipelines.export import OPSET, quantize_onnx_int8

    axes = {n: {0: "batch", 1: "sequence"} for n in inputs} | {"y": {0: "batch", 1: "sequence"}}
    if "mask" in inputs:
        axes["mask"] = {0: "batch", 3: "sequence"}
    fp32 = dest.with_suffix(".fp32.onnx") if int8 else dest
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            tuple(inputs.values()),
            str(fp32),
            input_names=list(inputs),
            output_names=["y"],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return quantize_onnx_int8(fp32, dest) if int8 else dest


def default_counts(width: int, parts: int = 16) -> tuple[int, ...]:
    """0, 1, every width/parts and the full width."""
    step = max(1, width // parts)
    return tuple(sorted({0, 1, width, *range(step, width + 1, step)}))


def _grid(counts: Iterable[int] | None, width: int, name: str) -> tuple[int, ...]:
    grid = tuple(sorted({0, *(range(width + 1) if counts is None else counts)}))
    if grid[0] < 0 or grid[-1] != width:
        raise ValueError(f"{name} must lie in [0, {width}] and include the full width {width}")
    return grid


def measure_latency_table(
    key: LatencyKey,
    *,
    counts_attention: Iterable[int] | None = None,  # default: every count 0..heads
    counts_ffn: Iterable[int] | None = None,  # default: default_counts(ffn)
    rounds: int = 5,
    iters: int = 3,
    warmup: int = 2,
) -> LatencyTable:
    from worker.pipelines.export import Turn, alternating_runs, open_session

    if rounds < 1 or iters < 1:
        raise ValueError(f"rounds and iters must be >= 1, got {rounds} and {iters}")
    grids = {
        "attention": _grid(counts_attention, key.heads, "counts_attention"),
        "ffn": _grid(
            default_counts(key.ffn) if counts_ffn is None else counts_ffn, key.ffn, "counts_ffn"
        ),
    }
    jobs: list[tuple[Block, int]] = [(k, c) for k in KINDS for c in grids[k] if c > 0]
    jobs.append(("rest", 0))
    turns: dict[tuple[Block, int], Turn] = {}
    with tempfile.TemporaryDirectory(prefix="latency-") as tmp:
        torch.manual_seed(0)
        for kind, kept in jobs:
            inputs = block_inputs(key, kind)
            path = export_block(
                block_module(key, kind, kept),
                inputs,
                Path(tmp) / f"{kind}-{kept}.onnx",
                int8=key.precision == "int8",
            )
            session = open_session(path, threads=key.threads)
            feed = {n: t.numpy() for n, t in inputs.items()}
            turns[(kind, kept)] = Turn(session, feed, iters, warmup)
        runs = alternating_runs(turns, rounds)
    median = {job: statistics.median(ms) / 1000.0 for job, ms in runs.items()}
    blocks = {
        k: BlockLatency(grids[k], tuple(median.get((k, c), 0.0) for c in grids[k])) for k in KINDS
    }
    return LatencyTable(key, blocks["attention"], blocks["ffn"], median[("rest", 0)], rounds, iters)


def cache_path(key: LatencyKey, cache_dir: Path) -> Path:
    return cache_dir / f"latency-{key.digest()}.json"


def _read(path: Path, key: LatencyKey) -> LatencyTable | None:
    try:
        table = LatencyTable.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("latency table %s unreadable (%s): measuring again", path, exc)
        return None
    return table if table.key == key else None


def cached_latency_table(key: LatencyKey, cache_dir: Path, **measure_kwargs: Any) -> LatencyTable:
    """The table of ``key`` from ``cache_dir`` when stored there under the same key (and
    covering any counts asked for), else measured and stored (atomically)."""
    path = cache_path(key, cache_dir)
    table = _read(path, key)
    for name in ("counts_attention", "counts_ffn"):
        if measure_kwargs.get(name) is not None:
            measure_kwargs[name] = tuple(measure_kwargs[name])
    wanted = {k: measure_kwargs.get(f"counts_{k}") for k in KINDS}
    if table is not None and all(
        w is None or set(w) <= set(table.block(k).counts) for k, w in wanted.items()
    ):
        return table
    table = measure_latency_table(key, **measure_kwargs)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(table.to_json(), fh, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return table


@dataclass(frozen=True)
class ModelOptions:
    """Per layer, the options of its attention and of its FFN for allocation.allocate."""

    attention: tuple[tuple[LayerOption, ...], ...]
    ffn: tuple[tuple[LayerOption, ...], ...]

    def interleaved(self) -> list[tuple[LayerOption, ...]]:
        """attention 0, ffn 0, attention 1, ffn 1, ...: allocate's ``options``."""
        return [opts for pair in zip(self.attention, self.ffn, strict=True) for opts in pair]

    def split(self, allocation: Allocation) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The heads and the neurons kept per layer of an allocation of :meth:`interleaved`."""
        return allocation.kept[0::2], allocation.kept[1::2]


def _options(
    table: LatencyTable, kind: Kind, losses: Sequence[Sequence[float]], step: int
) -> tuple[tuple[LayerOption, ...], ...]:
    out = []
    for layer, loss in enumerate(losses):
        values = [float(v) for v in loss]
        width = len(values) - 1
        if not 1 <= width <= table.key.width(kind):
            raise ValueError(
                f"{kind} losses[{layer}] must hold 2..{table.key.width(kind) + 1} "
                f"levels (loss per kept count 0..width), got {len(values)}"
            )
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{kind} losses[{layer}] must be finite")
        counts = sorted({*range(0, width + 1, step), width})
        out.append(tuple(LayerOption(c, values[c], table.latency(kind, c)) for c in counts))
    return tuple(out)


def layer_options(
    table: LatencyTable,
    levels_loss_heads: Sequence[Sequence[float]],
    levels_loss_neurons: Sequence[Sequence[float]],
    *,
    head_step: int = 1,
    neuron_step: int = 1,
) -> ModelOptions:
    """Options from per-layer losses, ``loss[k]`` the (normalised, e.g. StructuredLevels'
    ``relative()``) loss of keeping k structures, and the table's latency at k; every
    ``*_step``-th count is offered, and the full width always."""
    if len(levels_loss_heads) != len(levels_loss_neurons):
        raise ValueError(
            f"levels_loss_heads has {len(levels_loss_heads)} layers but "
            f"levels_loss_neurons {len(levels_loss_neurons)}"
        )
    if head_step < 1 or neuron_step < 1:
        raise ValueError("head_step and neuron_step must be >= 1")
    return ModelOptions(
        _options(table, "attention", levels_loss_heads, head_step),
        _options(table, "ffn", levels_loss_neurons, neuron_step),
    )
