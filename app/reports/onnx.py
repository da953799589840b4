"""The report's `onnx` section (`worker.pipelines.export_stage`): how the files were exported
and what ONNX Runtime measured of each, and the compaction of the graphs."""

from __future__ import annotations

from app.reports.base import Section
from app.reports.scores import OnnxBlock


class OnnxOutput(Section):
    name: str  # the model output and the graph's output (`logits`, `start_logits`)
    axes: list[str]  # its dynamic axes: batch, sequence


class CompactionLayer(Section):
    """One encoder layer of the compacted graph: its feed-forward block (`compacted`) and its
    attention heads (`heads_compacted`)."""

    layer: int
    compacted: bool
    neurons: int | None = None  # before
    kept: int | None = None
    constant: int | None = None  # folded into the output bias
    dead: int | None = None
    heads: int | None = None  # before
    heads_compacted: bool | None = None
    heads_reason: str | None = None  # why the heads were left in place
    heads_kept: int | None = None  # heads with a nonzero output column
    heads_removed: list[int] | None = None
    heads_in_graph: int | None = None


class Compaction(Section):
    """The attention heads and feed-forward neurons pruning emptied, removed from the graphs."""

    applied: bool
    reason: str | None = None  # why nothing could be compacted
    method: str | None = None
    ffn_neurons: int | None = None
    ffn_neurons_kept: int | None = None
    layers: list[CompactionLayer] | None = None
    attention_heads: int | None = None
    attention_heads_kept: int | None = None
    heads_per_layer: list[int] | None = None
    heads_reason: str | None = None
    pytorch_model: str | None = None  # what the saved PyTorch model keeps


class OnnxSection(Section):
    runtime: str | None = None  # onnxruntime <version>
    opset: int | None = None
    exporter: str | None = None
    outputs: list[OnnxOutput] | None = None
    int8_method: str | None = None
    int8_weight_bits: int | None = None  # 7 on an x86 CPU without VNNI or AMX, else 8
    providers: list[str] | None = None
    max_length: int | None = None
    min_fp32_agreement: float | None = None  # the export's parity gate
    latency_method: str | None = None
    compaction: Compaction | None = None
    dense_fp32: OnnxBlock | None = None  # the dense model exported the same way
    fp32: OnnxBlock
    int8: OnnxBlock
