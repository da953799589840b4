"""`report.md`: the job's report.json rendered as readable markdown tables.

Every task's eval blocks (a model's scores, a pruning step, a batch-1 run) name their primary
metric (`primary_metric: {name, value}`) and hold every scalar metric by name; blocks written
before there were several tasks (classification only) have no `primary_metric`, and their
primary metric is accuracy. :func:`primary_metric` reads both, and :data:`METRICS` says how each
metric is named and printed, so no reader hard-wires `accuracy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from worker.pipelines import host

Row = Sequence[str]
NA = "n/a"
DEFAULT_METRIC = "accuracy"  # the primary metric of a report without `primary_metric`
DEFAULT_TASK = "sequence_classification"  # the task of a report without `task`
MIB = 1024 * 1024


@dataclass(frozen=True)
class MetricFormat:
    label: str  # its name on its own ("Exact match": a card, a plot title)
    heading: str  # its name in a table header or a sentence ("exact match")
    percent: bool  # a fraction shown as a percentage; otherwise a number to 3 decimals


# Known metrics, in the order a task's scalars are shown (the primary one always comes first).
METRICS: dict[str, MetricFormat] = {
    "accuracy": MetricFormat("Accuracy", "accuracy", True),
    "macro_f1": MetricFormat("Macro-F1", "macro-F1", True),
    "entity_f1": MetricFormat("Entity F1", "entity F1", True),
    "precision": MetricFormat("Precision", "precision", True),
    "recall": MetricFormat("Recall", "recall", True),
    "token_accuracy": MetricFormat("Token accuracy", "token accuracy", True),
    "f1": MetricFormat("F1", "F1", True),
    "exact_match": MetricFormat("Exact match", "exact match", True),
    "spearman": MetricFormat("Spearman", "Spearman", False),
    "pearson": MetricFormat("Pearson", "Pearson", False),
    "mse": MetricFormat("MSE", "MSE", False),
}


class ShownMetric(NamedTuple):
    label: str
    value: float | None
    formatted: str
    name: str


def metric_format(name: str) -> MetricFormat:
    """How `name` is shown; a metric not in :data:`METRICS` keeps its name and 3 decimals."""
    return METRICS.get(name) or MetricFormat(name, name, False)


def format_metric(name: str, value: Any) -> str:
    """`value` of metric `name` as text: `81.25%` for a fraction, `0.873` otherwise."""
    if value is None:
        return NA
    return _pct(value) if metric_format(name).percent else f"{float(value):.3f}"


def primary_metric(block: dict[str, Any] | None) -> ShownMetric:
    """The primary metric of an eval block as (label, value, formatted, name); a block with no
    `primary_metric` (written before there were several tasks) falls back to its accuracy."""
    block = block or {}
    named = block.get("primary_metric")
    if isinstance(named, dict) and named.get("name"):
        name, value = str(named["name"]), named.get("value")
    else:
        name, value = DEFAULT_METRIC, block.get(DEFAULT_METRIC)
    return ShownMetric(metric_format(name).label, value, format_metric(name, value), name)


def metric_names(block: dict[str, Any] | None) -> list[str]:
    """The metrics to show for a block: its primary one, then its other known scalars."""
    primary = primary_metric(block).name
    others = [n for n in METRICS if n != primary and _is_number((block or {}).get(n))]
    return [primary, *others]


def metric_value(block: dict[str, Any] | None, name: str) -> Any:
    """Metric `name` of a block: the scalar of that name, else its primary metric's value."""
    block = block or {}
    if _is_number(block.get(name)):
        return block[name]
    shown = primary_metric(block)
    return shown.value if shown.name == name else None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _table(header: Row, rows: Sequence[Row]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return [*lines, ""]


def _pct(v: Any) -> str:
    return NA if v is None else f"{100 * float(v):.2f}%"


def _num(v: Any, fmt: str = "{:,}") -> str:
    return NA if v is None else fmt.format(v)


def _ms(lat: dict[str, Any] | None, key: str) -> str:
    return NA if not lat or lat.get(key) is None else f"{lat[key]:.2f}"


def _speedup(base: dict[str, Any] | None, lat: dict[str, Any] | None, key: str) -> str:
    if not base or not lat or not lat.get(key) or not base.get(key):
        return NA
    return f"{base[key] / lat[key]:.2f}x"


def variants(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per measured model: name, runtime, its eval block (`scores`) and the
    measurements the tables and plots use."""
    dense, comp, int8 = report["dense"], report["compressed"], report.get("int8")
    sparsity = comp["sparsity"]["overall"]

    def entry(
        name: str, runtime: str, block: dict[str, Any], sp: Any, params: Any
    ) -> dict[str, Any]:
        return {
            "name": name,
            "runtime": runtime,
            "scores": block,
            "sparsity": sp,
            "parameters": params,
            "file_size": block["file_size"],
            "latency": block["latency_cpu_ms"],
        }

    out = [
        entry("dense", "PyTorch fp32", dense, dense.get("encoder_sparsity"), dense["parameters"]),
        entry("compressed", "PyTorch fp32", comp, sparsity, comp["parameters"]),
    ]
    if int8:
        out.append(entry("compressed int8", "PyTorch int8", int8, sparsity, comp["parameters"]))
    onnx = report.get("onnx") or {}
    for key, name, sp, params in (
        ("dense_fp32", "dense", dense.get("encoder_sparsity"), dense["parameters"]),
        ("fp32", "compressed", sparsity, comp["parameters"]),
        ("int8", "compressed int8", sparsity, comp["parameters"]),
    ):
        if key in onnx:
            runtime = "ONNX Runtime " + ("int8" if key == "int8" else "fp32")
            out.append(entry(name, runtime, onnx[key], sp, params))
    return out


def _models_table(report: dict[str, Any]) -> list[str]:
    vs = variants(report)
    names = metric_names(report["compressed"])
    torch_base = vs[0]["latency"]
    ort_base = next((v["latency"] for v in vs if v["runtime"] == "ONNX Runtime fp32"), None)
    rows = []
    for v in vs:
        base = ort_base if v["runtime"].startswith("ONNX") else torch_base
        lat = v["latency"]
        rows.append(
            [
                v["name"],
                v["runtime"],
                *(format_metric(n, metric_value(v["scores"], n)) for n in names),
                _pct(v["sparsity"]),
                _num(v["parameters"]),
                _num(v["file_size"]["raw_mb"], "{:.2f}"),
                _num(v["file_size"]["gzip_mb"], "{:.2f}"),
                _ms(lat, "batch_1_ms"),
                _ms(lat, "batch_32_ms"),
                _speedup(base, lat, "batch_1_ms"),
                _speedup(base, lat, "batch_32_ms"),
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


def _pruning_line(pruning: dict[str, Any], structured: dict[str, Any] | None) -> str:
    if pruning.get("method") == "structured" and structured:
        target = structured.get("target_speedup")
        steps = structured.get("steps")
        final = (structured.get("final") or {}).get("predicted_speedup")
        predicted = f", predicted {final:.2f}x" if isinstance(final, (int, float)) else ""
        return f"- pruning: structured (heads and neurons) to {target}x in {steps} steps{predicted}"
    return (
        f"- pruning: {pruning.get('method')} to {_pct(pruning.get('target_sparsity'))} "
        f"({pruning.get('structure')}, {pruning.get('scope')}, {pruning.get('schedule')} schedule)"
    )


def _compaction_lines(comp: dict[str, Any]) -> list[str]:
    if not comp.get("applied"):
        return []
    kept, total = comp["ffn_neurons_kept"], comp["ffn_neurons"]
    per_layer = ", ".join(f"{x['kept']}" for x in comp.get("layers", []) if x.get("compacted"))
    lines = [
        f"The ONNX graphs keep {kept} of {total} feed-forward neurons (per layer: {per_layer}):"
        " the others were emptied by pruning and removed exactly before export."
    ]
    if comp.get("heads_per_layer") and comp["attention_heads_kept"] < comp["attention_heads"]:
        heads = ", ".join(map(str, comp["heads_per_layer"]))
        lines.append(
            f"They keep {comp['attention_heads_kept']} of {comp['attention_heads']} attention "
            f"heads (per layer: {heads}); the PyTorch model keeps its shapes, the removed "
            "heads zeroed (transformers 5 has no prune_heads)."
        )
    return [*lines, ""]


def _scores_phrase(block: dict[str, Any]) -> str:
    """`accuracy 50.00% (macro-F1 40.00%)`: the primary metric, then the block's others."""
    names = metric_names(block)
    shown = primary_metric(block)
    others = ", ".join(
        f"{metric_format(n).heading} {format_metric(n, block[n])}" for n in names[1:]
    )
    head = f"{metric_format(shown.name).heading} {shown.formatted}"
    return f"{head} ({others})" if others else head


def _batch_1_lines(int8: dict[str, Any]) -> list[str]:
    one = int8.get("batch_1")
    if not one:
        return []
    return [
        f"The int8 ONNX model run one example at a time (as a batch-1 server runs it) scores "
        f"{_scores_phrase(one)} against {primary_metric(int8).formatted} in evaluation "
        f"batches of {int8.get('eval_batch_size', '?')}: dynamic int8 quantizes activations "
        "with one scale per batch, so its predictions can depend on the batching.",
        "",
    ]


def _agreement(p: dict[str, Any]) -> str:
    text = _pct(p["agreement"])
    return f"{text} (Pearson {p['pearson']:.4f})" if _is_number(p.get("pearson")) else text


def _parity_table(onnx: dict[str, Any]) -> list[str]:
    """Each ONNX file against its PyTorch reference: the fraction of dev examples, questions or
    tokens (`unit`) predicted the same, and the largest output difference. Reports from before
    the tasks call that difference `max_abs_logit_diff` and always count examples."""
    rows = []
    for key, name in (
        ("fp32", "compressed fp32"),
        ("int8", "compressed int8"),
        ("dense_fp32", "dense fp32"),
    ):
        p = (onnx.get(key) or {}).get("parity")
        if p:
            diff = p.get("max_abs_diff", p.get("max_abs_logit_diff"))
            rows.append(
                [
                    name,
                    p["reference"],
                    _agreement(p),
                    _num(diff, "{:.3g}"),
                    f"{p['n']:,} {p.get('unit', 'examples')}",
                ]
            )
    header = ["ONNX model", "compared with", "agreement", "max abs output diff", "compared"]
    return [
        "Agreement is the fraction of the compared dev items (examples, questions or tokens) on "
        "which the ONNX model predicts what its reference predicts.",
        "",
        *_table(header, rows),
    ]


def _details_tables(report: dict[str, Any]) -> list[str]:
    """Per class (classification) or per entity type (NER): the compressed model's precision,
    recall, F1 and support, with the dense model's F1 beside it."""
    lines: list[str] = []
    comp, dense = report["compressed"], report["dense"]
    for key, title, column in (
        ("per_class", "Per class", "class"),
        ("per_type", "Per entity type", "entity type"),
    ):
        per = comp.get(key)
        if not per:
            continue
        dense_per = dense.get(key) or {}
        rows = [
            [
                name,
                _pct(s.get("precision")),
                _pct(s.get("recall")),
                _pct(s.get("f1")),
                _pct((dense_per.get(name) or {}).get("f1")),
                _num(None if s.get("support") is None else int(s["support"])),
            ]
            for name, s in per.items()
        ]
        header = [column, "precision", "recall", "F1", "dense F1", "support"]
        lines += [f"## {title}", "", "The compressed model (PyTorch fp32).", ""]
        lines += _table(header, rows)
    return lines


def _teacher_cache_lines(cache: dict[str, Any] | None) -> list[str]:
    if cache is None:
        return []
    if not cache.get("enabled"):
        return ["## Teacher cache", "", "The teacher's outputs were not cached.", ""]
    hits, misses = int(cache.get("hits", 0)), int(cache.get("misses", 0))
    rate = f" (hit rate {_pct(hits / (hits + misses))})" if hits + misses else ""
    return [
        "## Teacher cache",
        "",
        f"The teacher's outputs were cached for {int(cache.get('items', 0)):,} items "
        f"({int(cache.get('bytes', 0)) / MIB:.2f} MiB): {hits:,} hits and {misses:,} misses"
        f"{rate}.",
        "",
    ]


def _layer_tables(report: dict[str, Any]) -> list[str]:
    sp = report["compressed"]["sparsity"]
    per_block = sp.get("per_encoder_layer") or {}
    kept = report["compressed"].get("kept_layers")
    rows = []
    for i, (block, value) in enumerate(sorted(per_block.items(), key=lambda kv: _order(kv[0]))):
        origin = str(kept[i]) if kept and i < len(kept) and block.isdigit() else NA
        rows.append([block, origin, _pct(value)])
    lines = _table(["encoder layer", "original layer", "sparsity"], rows)
    modules = sp.get("per_layer") or {}
    if modules:
        lines += ["<details><summary>Per Linear module</summary>", ""]
        lines += _table(["module", "sparsity"], [[k, _pct(v)] for k, v in modules.items()])
        lines += ["</details>", ""]
    return lines


def _order(block: str) -> tuple[int, str]:
    return (int(block), "") if block.isdigit() else (1 << 30, block)


def _pruning_table(report: dict[str, Any]) -> list[str]:
    """Each pruning step's target and the primary metric right after it (older reports record
    it as `accuracy`)."""
    applied = report.get("pruning", {}).get("applied") or []
    if not applied:
        return ["No pruning steps were applied.", ""]
    heading = metric_format(primary_metric(report["compressed"]).name).heading
    rows = [[str(a["step"]), _pct(a["sparsity"]), primary_metric(a).formatted] for a in applied]
    return _table(["training step", "target sparsity", f"dev {heading} after pruning"], rows)


def _cpu_lines(info: dict[str, Any] | None) -> list[str]:
    if not info:
        return []
    return [f"Measured on {host.describe(info)}."]


def render_markdown(report: dict[str, Any]) -> str:
    """The markdown report (every number comes from `report`)."""
    spec = report.get("spec") or {}
    pruning = report.get("pruning") or {}
    ds = report.get("dataset") or {}
    heading = metric_format(primary_metric(report["compressed"]).name).heading
    lines = [
        f"# Compression report{' - job ' + report['job_id'] if report.get('job_id') else ''}",
        "",
        f"- task: {report.get('task') or DEFAULT_TASK}",
        f"- model: `{(report.get('model') or {}).get('source', '?')}`",
        f"- data set: `{ds.get('name', '?')}` ({ds.get('train_examples', '?')} train / "
        f"{ds.get('dev_examples', '?')} dev examples), max length {report.get('max_length')}",
        _pruning_line(pruning, report.get("structured")),
        f"- quantization: {(spec.get('quantization') or {}).get('method', '?')}",
        f"- device: {report.get('device')}; total wall time {report.get('total_seconds', 0):.1f} s",
        "",
        "## Models",
        "",
        f"Scores on the dev split ({heading} is the task's primary metric). Latency is the "
        "median CPU time of one forward pass at the job's max length; speedups are against the "
        "dense model in the same runtime.",
        *_cpu_lines(report.get("cpu")),
        "",
        *_models_table(report),
        *_details_tables(report),
    ]
    onnx = report.get("onnx")
    if onnx:
        lines += ["## ONNX parity", "", *_parity_table(onnx)]
        lines += _compaction_lines(onnx.get("compaction") or {})
        lines += _batch_1_lines(onnx.get("int8") or {})
    lines += _teacher_cache_lines(report.get("teacher_cache"))
    lines += ["## Wall time per stage", ""]
    stages = report.get("stage_seconds") or {}
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
