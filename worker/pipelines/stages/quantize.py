"""The `quantize` stage (dynamic_int8): an int8 CPU copy of the compressed model. Without
quantization the compressed model goes on alone; `qat` (`stages.qat`) gives the same output."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from worker.pipelines.context import PipelineContext
from worker.pipelines.stages.recover import Recovered


@dataclass(frozen=True)
class Quantized:
    model: nn.Module  # the fp32 model to ship (QAT: its weights baked onto the int8 grid)
    qmodel: nn.Module | None  # the int8 model; None without quantization
    qat_model: nn.Module | None = None  # the fake-quant model after QAT (for export parity)
    steps: dict[str, int] = field(default_factory=dict)  # {"qat": n} when QAT trained


def stage_quantize(rec: Recovered, method: str, ctx: PipelineContext) -> Quantized:
    from worker.compression import quantize_dynamic_int8

    if method != "dynamic_int8":
        return Quantized(rec.model, None)
    ctx.reporter.stage("quantize")
    return Quantized(rec.model, quantize_dynamic_int8(rec.model))  # a CPU copy
