"""`report.md`: the job's report.json rendered as readable markdown tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from worker.pipelines import host

Row = Sequence[str]
NA = "n/a"


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
    """One entry per measured model: name, runtime and the numbers the tables and plots use."""
    dense, comp, int8 = report["dense"], report["compressed"], report.get("int8")
    sparsity = comp["sparsity"]["overall"]
    out: list[dict[str, Any]] = [
        {
            "name": "dense",
            "runtime": "PyTorch fp32",
            "accuracy": dense["accuracy"],
            "macro_f1": dense["macro_f1"],
            "sparsity": dense.get("encoder_sparsity"),
            "parameters": dense["parameters"],
            "file_size": dense["file_size"],
            "latency": dense["latency_cpu_ms"],
        },
        {
            "name": "compressed",
            "runtime": "PyTorch fp32",
            "accuracy": comp["accuracy"],
            "macro_f1": comp["macro_f1"],
            "sparsity": sparsity,
            "parameters": comp["parameters"],
            "file_size": comp["file_size"],
            "latency": comp["latency_cpu_ms"],
        },
    ]
    if int8:
        out.append(
            {
                "name": "compressed int8",
                "runtime": "PyTorch int8",
                "accuracy": int8["accuracy"],
                "macro_f1": int8["macro_f1"],
                "sparsity": sparsity,
                "parameters": comp["parameters"],
                "file_size": int8["file_size"],
                "latency": int8["latency_cpu_ms"],
            }
        )
    onnx = report.get("onnx") or {}
    for key, name, sp, params in (
        ("dense_fp32", "dense", dense.get("encoder_sparsity"), dense["parameters"]),
        ("fp32", "compressed", sparsity, comp["parameters"]),
        ("int8", "compressed int8", sparsity, comp["parameters"]),
    ):
        if key in onnx:
            v = onnx[key]
            out.append(
                {
                    "name": name,
                    "runtime": "ONNX Runtime " + ("int8" if key == "int8" else "fp32"),
                    "accuracy": v["accuracy"],
                    "macro_f1": v["macro_f1"],
                    "sparsity": sp,
                    "parameters": params,
                    "file_size": v["file_size"],
                    "latency": v["latency_cpu_ms"],
                }
            )
    return out


def _models_table(report: dict[str, Any]) -> list[str]:
    vs = variants(report)
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
                _pct(v["accuracy"]),
                _pct(v["macro_f1"]),
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
        "accuracy",
        "macro-F1",
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


def _compaction_lines(comp: dict[str, Any]) -> list[str]:
    if not comp.get("applied"):
        return []
    kept, total = comp["ffn_neurons_kept"], comp["ffn_neurons"]
    per_layer = ", ".join(f"{x['kept']}" for x in comp.get("layers", []) if x.get("compacted"))
    return [
        f"The ONNX graphs keep {kept} of {total} feed-forward neurons (per layer: {per_layer}):"
        " the others were emptied by pruning and removed exactly before export.",
        "",
    ]


def _batch_1_lines(int8: dict[str, Any]) -> list[str]:
    one = int8.get("batch_1")
    if not one:
        return []
    return [
        f"The int8 ONNX model run one example at a time (as a batch-1 server runs it) scores "
        f"{_pct(one['accuracy'])} (macro-F1 {one['macro_f1']:.4f}) against "
        f"{_pct(int8['accuracy'])} in evaluation batches of {int8.get('eval_batch_size', '?')}:"
        " dynamic int8 quantizes activations with one scale per batch, so its predictions "
        "can depend on the batching.",
        "",
    ]


def _parity_table(onnx: dict[str, Any]) -> list[str]:
    rows = []
    for key, name in (
        ("fp32", "compressed fp32"),
        ("int8", "compressed int8"),
        ("dense_fp32", "dense fp32"),
    ):
        p = (onnx.get(key) or {}).get("parity")
        if p:
            rows.append(
                [
                    name,
                    p["reference"],
                    _pct(p["agreement"]),
                    f"{p['max_abs_logit_diff']:.3g}",
                    str(p["n"]),
                ]
            )
    return _table(
        ["ONNX model", "compared with", "label agreement", "max abs logit diff", "examples"], rows
    )


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
    applied = report.get("pruning", {}).get("applied") or []
    if not applied:
        return ["No pruning steps were applied.", ""]
    rows = [[str(a["step"]), _pct(a["sparsity"]), _pct(a.get("accuracy"))] for a in applied]
    return _table(["training step", "target sparsity", "dev accuracy after pruning"], rows)


def _cpu_lines(info: dict[str, Any] | None) -> list[str]:
    if not info:
        return []
    return [f"Measured on {host.describe(info)}."]


def render_markdown(report: dict[str, Any]) -> str:
    """The markdown report (every number comes from `report`)."""
    spec = report.get("spec") or {}
    pruning = report.get("pruning") or {}
    ds = report.get("dataset") or {}
    lines = [
        f"# Compression report{' - job ' + report['job_id'] if report.get('job_id') else ''}",
        "",
        f"- model: `{(report.get('model') or {}).get('source', '?')}`",
        f"- data set: `{ds.get('name', '?')}` ({ds.get('train_examples', '?')} train / "
        f"{ds.get('dev_examples', '?')} dev examples), max length {report.get('max_length')}",
        f"- pruning: {pruning.get('method')} to {_pct(pruning.get('target_sparsity'))} "
        f"({pruning.get('structure')}, {pruning.get('scope')}, {pruning.get('schedule')} schedule)",
        f"- quantization: {(spec.get('quantization') or {}).get('method', '?')}",
        f"- device: {report.get('device')}; total wall time {report.get('total_seconds', 0):.1f} s",
        "",
        "## Models",
        "",
        "Accuracy on the dev split. Latency is the median CPU time of one forward pass at "
        "the job's max length; speedups are against the dense model in the same runtime.",
        *_cpu_lines(report.get("cpu")),
        "",
        *_models_table(report),
    ]
    onnx = report.get("onnx")
    if onnx:
        lines += ["## ONNX parity", "", *_parity_table(onnx)]
        lines += _compaction_lines(onnx.get("compaction") or {})
        lines += _batch_1_lines(onnx.get("int8") or {})
    lines += ["## Wall time per stage", ""]
    stages = report.get("stage_seconds") or {}
    lines += _table(["stage", "seconds"], [[k, f"{v:.2f}"] for k, v in stages.items()])
    lines += ["## Pruning steps", "", *_pruning_table(report)]
    lines += ["## Sparsity per layer", "", *_layer_tables(report)]
    lines += [
        "## Plots",
        "",
        "![sparsity per layer](sparsity.png)",
        "![accuracy across pruning steps](accuracy.png)",
        "![latency and size](latency_size.png)",
        "",
    ]
    return "\n".join(lines)
