"""Job spec checks that need the model's config: layers to keep, max_length against the
model's positions, block sizes, and the whole job's estimated memory and run time
(app.services.job_estimate) against the worker's budget and the per-job time limit, refused
at submission rather than failing in the worker.

The arithmetic (the Fisher state, the block size, the model's shape) is job_estimate's; this
module only compares it with the limits and names the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.errors import Unprocessable
from app.schemas.job_spec import JobSpec
from app.services import job_data_sizes, job_estimate
from app.settings import Settings

# The built-in models' encoders (all-MiniLM-L6-v2).
BUILTIN_CONFIGS: dict[str, dict[str, Any]] = {
    "minilm-l6": {
        "model_type": "bert",
        "hidden_size": 384,
        "num_hidden_layers": 6,
        "intermediate_size": 1536,
        "max_position_embeddings": 512,
        "num_attention_heads": 12,
        "vocab_size": 30522,
        "type_vocab_size": 2,
    },
}


@dataclass(frozen=True)
class Limits:
    memory_budget_bytes: int
    time_limit_s: int
    flops_per_s: float

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.worker_memory_budget_bytes, settings.job_time_limit_s,
                   settings.estimate_train_flops_per_s)  # fmt: skip


def check_spec(spec: JobSpec, config: dict[str, Any] | None) -> None:
    """Raises Unprocessable naming the field. `config` is the model's config.json (None for a
    model whose config is unknown: only the config-free checks run). The estimate, which
    needs the data set's sizes too, is check_estimate."""
    if spec.pruning.method == "obert" and spec.pruning.structure == "block4":
        block = job_estimate.block_size(spec)
        if block % 4:
            raise Unprocessable(
                f"block4 pruning needs a block_size divisible by 4, got {block}",
                code="invalid_spec", field="pruning.obert.block_size",
            )  # fmt: skip
    if config is None:
        return
    shape = job_estimate.Shape.of(config)  # read with the family's keys (DistilBERT: n_layers)
    keys, layers = shape.arch.keys, config.get(shape.arch.keys.layers)
    if spec.layers is not None and type(layers) is int and spec.layers.keep > layers:
        raise Unprocessable(
            f"the model has {layers} layers ({keys.layers}); cannot keep {spec.layers.keep}",
            code="invalid_spec", field="layers.keep",
        )  # fmt: skip
    if type(shape.config.get(keys.positions)) is int:
        usable = shape.arch.usable_positions(shape.config)
        if spec.dataset.max_length > usable:
            after_pad = " (numbered after the padding id)" if shape.arch.positions_after_pad else ""
            raise Unprocessable(
                f"the model has {usable} usable positions{after_pad}; max_length "
                f"{spec.dataset.max_length} is longer", code="invalid_spec",
                field="dataset.max_length",
            )  # fmt: skip


def check_estimate(
    spec: JobSpec, config: dict[str, Any], data: job_data_sizes.DataSizes, limits: Limits
) -> job_estimate.Estimate:
    """The whole job's estimated peak memory against the worker's budget, then its estimated
    run time against the per-job limit; raises Unprocessable naming both and the field to
    change. Returns the estimate when it fits."""
    est = job_estimate.estimate(spec, config, data, limits.flops_per_s)
    budget = limits.memory_budget_bytes
    if est.peak_bytes > budget:
        top = est.largest()
        parts = ", ".join(f"{p.what} {_gib(p.bytes)}" for p in
                          sorted(est.parts, key=lambda p: -p.bytes)[:3])  # fmt: skip
        raise Unprocessable(
            f"the job would need an estimated {_gib(est.peak_bytes)} ({est.peak_bytes} bytes) "
            f"of memory at its peak, in {est.phase} ({parts}, with overheads), over the "
            f"worker's memory budget of {_gib(budget)} ({budget} bytes, "
            f"WORKER_MEMORY_BUDGET_BYTES); lower {top.field}",
            code="memory_budget_exceeded", field=top.field,
        )  # fmt: skip
    if est.seconds > limits.time_limit_s:
        raise Unprocessable(
            f"the job would take an estimated {est.seconds:,.0f} s ({est.seconds / 3600:,.1f} h) "
            f"at {limits.flops_per_s / 1e9:g} GFLOP/s (ESTIMATE_TRAIN_FLOPS_PER_S), over the "
            f"per-job time limit of {limits.time_limit_s:,} s ({limits.time_limit_s / 3600:g} h, "
            f"JOB_TIME_LIMIT_S); lower {est.time_field}",
            code="time_limit_exceeded", field=est.time_field,
        )  # fmt: skip
    return est


def _gib(n: float) -> str:
    return f"{n / 2**30:,.2f} GiB"


def model_config(model: str, uploaded_config: dict[str, Any] | None) -> dict[str, Any] | None:
    if uploaded_config is not None:
        return uploaded_config
    builtin = BUILTIN_CONFIGS.get(model)
    return dict(builtin) if builtin is not None else None
