"""`report.md`: the job's report (`app.reports.Report`) rendered as readable markdown tables.

How each metric is named and printed, and which models are compared, is
`worker.pipelines.report_metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.reports import (
    ClassScores,
    Compaction,
    CpuInfo,
    OnnxBlock,
    OnnxSection,
    Parity,
    Pruning,
    Report,
    Scores,
    StructuredSection,
    TeacherCache,
)
from worker.pipelines import host
from worker.pipelines.report_metrics import (
    NA,
    format_metric,
    metric_format,
    metric_names,
    pct,
    primary_metric,
    structured_speedups,
    variants,
)

Row = Sequence[str]
MIB = 1024 * 1024


def _table(header: Row, rows: Sequence[Row]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return [*lines, ""]


def _num(v: float | None, fmt: str = "{:,}") -> str:
    return NA if v is None else fmt.format(v)


def _ms(v: float | None) -> str:
    return NA if v is None else f"{v:.2f}"


def _speedup(base: float | None, v: float | None) -> str:
    return NA if not base or not v else f"{base / v:.2f}x"


def _models_table(report: Report) -> list[str]:
    vs = variants(report)
    names = metric_names(report.compressed)
    torch_base = vs[0].latency
    ort_base = next((v.latency for v in vs if v.runtime == "ONNX Runtime fp32"), None)
    rows = []
    for v in vs:
        base = ort_base if v.runtime.startswith("ONNX") else torch_base
        lat = v.latency
        rows.append(
            [
                v.name,
                v.runtime,
                *(format_metric(n, v.scores.metric(n)) for n in names),
                pct(v.sparsity),
                _num(v.parameters),
                _num(v.file_size.raw_mb, "{:.2f}"),
                _num(v.file_size.gzip_mb, "{:.2f}"),
                _ms(lat.batch_1_ms),
                _ms(lat.batch_32_ms),
                _speedup(base.batch_1_ms if base is not None else None, lat.batch_1_ms),
                _speedup(base.batch_32_ms if base is not None else None, lat.batch_32_ms),
            ]
        )
    header = [
        "model",
        "runtime",
        *(metric_format(n).heading for n in names),
        "encoder sparsity",
        "parameters",
        "size MiB",
        "gzip MiB",
        "latency b1 ms",
        "latency b32 ms",
        "speedup b1",
        "speedup b32",
    ]
    return _table(header, rows)


def _pruning_line(pruning: Pruning | None, structured: StructuredSection | None) -> str:
    if pruning is not None and pruning.method == "structured" and structured is not None:
        target, steps = structured.target_speedup, structured.steps
        speedups = structured_speedups(structured)
        return (
            f"- pruning: structured (heads and neurons) to {target}x in {steps} steps: " + speedups
        )
    if pruning is None:
        return "- pruning: not recorded"
    return (
        f"- pruning: {pruning.method} to {pct(pruning.target_sparsity)} "
        f"({pruning.structure}, {pruning.scope}, {pruning.schedule} schedule)"
    )


def _compaction_lines(comp: Compaction | None) -> list[str]:
    if comp is None or not comp.applied:
        return []
    per_layer = ", ".join(f"{x.kept}" for x in comp.layers or [] if x.compacted)
    lines = [
        f"The ONNX graphs keep {comp.ffn_neurons_kept} of {comp.ffn_neurons} feed-forward "
        f"neurons (per layer: {per_layer}): the others were emptied by pruning and removed "
        "exactly before export."
    ]
    kept, total = comp.attention_heads_kept, comp.attention_heads
    if comp.heads_per_layer and kept is not None and total is not None and kept < total:
        heads = ", ".join(map(str, comp.heads_per_layer))
        lines.append(
            f"They keep {kept} of {total} attention heads (per layer: {heads}); the PyTorch "
            "model keeps its shapes, the removed heads zeroed (transformers 5 has no "
            "prune_heads)."
        )
    return [*lines, ""]


def _scores_phrase(block: Scores) -> str:
    """`accuracy 50.00% (macro-F1 40.00%)`: the primary metric, then the block's others."""
    names = metric_names(block)
    shown = primary_metric(block)
    others = ", ".join(
        f"{metric_format(n).heading} {format_metric(n, block.metric(n))}" for n in names[1:]
    )
    head = f"{metric_format(shown.name).heading} {shown.formatted}"
    return f"{head} ({others})" if others else head


def _batch_1_lines(int8: OnnxBlock) -> list[str]:
    if int8.batch_1 is None:
        return []
    batch = "?" if int8.eval_batch_size is None else int8.eval_batch_size
    return [
        f"The int8 ONNX model run one example at a time (as a batch-1 server runs it) scores "
        f"{_scores_phrase(int8.batch_1)} against {primary_metric(int8).formatted} in evaluation "
        f"batches of {batch}: dynamic int8 quantizes activations with one scale per batch, so "
        "its predictions can depend on the batching.",
        "",
    ]


def _agreement(p: Parity) -> str:
    text = pct(p.agreement)
    return f"{text} (Pearson {p.pearson:.4f})" if p.pearson is not None else text


def _parity_table(onnx: OnnxSection) -> list[str]:
    """Each ONNX file against its PyTorch reference: the fraction of dev examples, questions or
    tokens (`unit`) predicted the same, and the largest output difference."""
    rows = []
    for block, name in (
        (onnx.fp32, "compressed fp32"),
        (onnx.int8, "compressed int8"),
        (onnx.dense_fp32, "dense fp32"),
    ):
        p = block.parity if block is not None else None
        if p is not None:
            rows.append(
                [name, p.reference, _agreement(p), _num(p.max_abs_diff, "{:.3g}"),
                 f"{p.n:,} {p.unit}"]
            )  # fmt: skip
    header = ["ONNX model", "compared with", "agreement", "max abs output diff", "compared"]
    return [
        "Agreement is the fraction of the compared dev items (examples, questions or tokens) on "
        "which the ONNX model predicts what its reference predicts.",
        "",
        *_table(header, rows),
    ]


def _details_tables(report: Report) -> list[str]:
    """Per class (classification) or per entity type (NER): the compressed model's precision,
    recall, F1 and support, with the dense model's F1 beside it."""
    lines: list[str] = []
    comp, dense = report.compressed, report.dense
    for per, dense_per, title, column in (
        (comp.per_class, dense.per_class, "Per class", "class"),
        (comp.per_type, dense.per_type, "Per entity type", "entity type"),
    ):
        if not per:
            continue
        other: dict[str, ClassScores] = dense_per or {}
        rows = [
            [
                name,
                pct(s.precision),
                pct(s.recall),
                pct(s.f1),
                pct(other[name].f1 if name in other else None),
                _num(None if s.support is None else int(s.support)),
            ]
            for name, s in per.items()
        ]
        header = [column, "precision", "recall", "F1", "dense F1", "support"]
        lines += [f"## {title}", "", "The compressed model (PyTorch fp32).", ""]
        lines += _table(header, rows)
    return lines


def _teacher_cache_lines(cache: TeacherCache | None) -> list[str]:
    if cache is None:
        return []
    if not cache.enabled:
        return ["## Teacher cache", "", "The teacher's outputs were not cached.", ""]
    hits, misses = cache.hit_batches, cache.teacher_batches
    rate = f" (hit rate {pct(hits / (hits + misses))})" if hits + misses else ""
    return [
        "## Teacher cache",
        "",
        f"The teacher's outputs were cached for {cache.items:,} items "
        f"({cache.bytes / MIB:.2f} MiB): {hits:,} hits and {misses:,} misses"
        f"{rate}.",
        "",
    ]


def _layer_tables(report: Report) -> list[str]:
    sp = report.compressed.sparsity
    kept = report.compressed.kept_layers
    rows = []
    blocks = sorted(sp.per_encoder_layer.items(), key=lambda kv: _order(kv[0]))
    for i, (block, value) in enumerate(blocks):
        origin = str(kept[i]) if kept and i < len(kept) and block.isdigit() else NA
        rows.append([block, origin, pct(value)])
    lines = _table(["encoder layer", "original layer", "sparsity"], rows)
    if sp.per_layer:
        lines += ["<details><summary>Per Linear module</summary>", ""]
        lines += _table(["module", "sparsity"], [[k, pct(v)] for k, v in sp.per_layer.items()])
        lines += ["</details>", ""]
    return lines


def _order(block: str) -> tuple[int, str]:
    return (int(block), "") if block.isdigit() else (1 << 30, block)


def _pruning_table(report: Report) -> list[str]:
    """Each pruning step's target and the primary metric right after it."""
    applied = report.pruning.applied if report.pruning is not None else []
    if not applied:
        return ["No pruning steps were applied.", ""]
    heading = metric_format(primary_metric(report.compressed).name).heading
    rows = [[str(a.step), pct(a.sparsity), primary_metric(a).formatted] for a in applied]
    return _table(["training step", "target sparsity", f"dev {heading} after pruning"], rows)


def _cpu_lines(info: CpuInfo | None) -> list[str]:
    return [] if info is None else [f"Measured on {host.describe(info.model_dump())}."]


def render_markdown(report: Report) -> str:
    """The markdown report (every number comes from `report`)."""
    ds = report.dataset
    heading = metric_format(primary_metric(report.compressed).name).heading
    quantization = report.spec_at("quantization", "method") or "?"
    train = "?" if ds is None or ds.train_examples is None else ds.train_examples
    dev = "?" if ds is None or ds.dev_examples is None else ds.dev_examples
    lines = [
        f"# Compression report{' - job ' + report.job_id if report.job_id else ''}",
        "",
        f"- task: {report.task}",
        f"- model: `{report.model.source if report.model else '?'}`",
        f"- data set: `{ds.name if ds else '?'}` ({train} train / {dev} dev examples), max "
        f"length {report.max_length}",
        _pruning_line(report.pruning, report.structured),
        f"- quantization: {quantization}",
        f"- device: {report.device}; total wall time {report.total_seconds or 0:.1f} s",
        "",
        "## Models",
        "",
        f"Scores on the dev split ({heading} is the task's primary metric). Latency is the "
        "median CPU time of one forward pass at the job's max length; speedups are against the "
        "dense model in the same runtime.",
        *_cpu_lines(report.cpu),
        "",
        *_models_table(report),
        *_details_tables(report),
    ]
    onnx = report.onnx
    if onnx is not None:
        lines += ["## ONNX parity", "", *_parity_table(onnx)]
        lines += _compaction_lines(onnx.compaction)
        lines += _batch_1_lines(onnx.int8)
    if quantization not in ("?", "none"):
        lines += [
            "To deploy int8, use `model-int8.onnx` (runs in ONNX Runtime alone). The PyTorch "
            "int8 archive (`model-int8.tar.gz`) needs Scalpel's code to load "
            "(`worker.compression.load_int8_state_dict`, as its `quantization.json` says).",
            "",
        ]
    lines += _teacher_cache_lines(report.teacher_cache)
    lines += ["## Wall time per stage", ""]
    stages = report.stage_seconds
    lines += _table(["stage", "seconds"], [[k, f"{v:.2f}"] for k, v in stages.items()])
    lines += ["## Pruning steps", "", *_pruning_table(report)]
    lines += ["## Sparsity per layer", "", *_layer_tables(report)]
    lines += [
        "## Plots",
        "",
        "![sparsity per layer](sparsity.png)",
        f"![{heading} across pruning steps](accuracy.png)",
        "![latency and size](latency_size.png)",
        "",
    ]
    return "\n".join(lines)
