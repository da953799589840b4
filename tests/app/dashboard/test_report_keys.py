"""The dashboard reads report.json in the browser (static/report.js): every key it reads is a
field of the report model's JSON schema (`app.reports.Report`), so the two cannot drift."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from app.reports import Report

STATIC = Path(__file__).resolve().parents[3] / "app" / "dashboard" / "static"
Path_ = tuple[str, ...]


def _function_body(source: str, start: int) -> str:
    """The text of the `{ ... }` block that opens at or after `start`."""
    i = source.index("{", start)
    depth = 0
    for j in range(i, len(source)):
        depth += {"{": 1, "}": -1}.get(source[j], 0)
        if depth == 0:
            return source[i : j + 1]
    raise AssertionError("unbalanced braces")


def _default_metric(metrics_js: str) -> str:
    found = re.search(r'export const DEFAULT_METRIC = "(\w+)"', metrics_js)
    assert found, "metrics.js names no DEFAULT_METRIC"
    body = _function_body(metrics_js, metrics_js.index("export function primaryMetric("))
    # what primaryMetric(block) reads of a block: its primary_metric {name, value}, else the
    # default metric's scalar
    assert ".primary_metric" in body and "named.name" in body and "named.value" in body
    assert "b[DEFAULT_METRIC]" in body
    return found.group(1)


def _path_of(expr: str, aliases: dict[str, Path_]) -> Path_ | None:
    """`c.sparsity` as a report path, `c` being an alias of `report.compressed`."""
    head, *rest = re.split(r"\??\.", expr)
    return None if head not in aliases else (*aliases[head], *rest)


def report_reads(source: str, default_metric: str) -> set[Path_]:
    """The report keys (as paths) read by every function of `source` that takes `report`."""
    paths: set[Path_] = set()
    for fn in re.finditer(r"function \w+\(report\)", source):
        body = _function_body(source, fn.end())
        aliases: dict[str, Path_] = {"report": ()}
        for name, key in re.findall(r"const (\w+) = report\??\.(\w+)", body):
            aliases[name] = (key,)

        for expr in re.findall(r"\breport(?:\??\.\w+)+", body):
            paths.add(_path_of(expr, aliases) or ())
        for base, args in re.findall(r"dig\((\w+),\s*((?:\"\w+\",?\s*)+)\)", body):
            keys = tuple(re.findall(r'"(\w+)"', args))
            head = _path_of(base, aliases)
            assert head is not None, f"dig() on {base}, not the report"
            paths.add((*head, *keys))
        for expr in re.findall(r"primaryMetric\(([\w.?]+)\)", body):
            block = _path_of(expr, aliases)
            assert block is not None, f"primaryMetric() of {expr}, not the report"
            paths |= {(*block, "primary_metric", "name"), (*block, "primary_metric", "value")}
            paths.add((*block, default_metric))
    paths.discard(())
    return paths


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return _resolve(schema, schema["$defs"][node["$ref"].rsplit("/", 1)[1]])
    objects = [n for n in node.get("anyOf", []) if n.get("type") != "null"]
    return _resolve(schema, objects[0]) if len(objects) == 1 else node


def missing_from_schema(paths: set[Path_]) -> list[Path_]:
    """The paths that are no declared field of the model (a dict's keys are any keys)."""
    schema = Report.model_json_schema()
    missing = []
    for path in sorted(paths):
        node = _resolve(schema, schema)
        for key in path:
            props = node.get("properties") or {}
            extra = node.get("additionalProperties")
            if key in props:
                node = _resolve(schema, props[key])
            elif isinstance(extra, dict):  # a dict of this value type (per_class, ...)
                node = _resolve(schema, extra)
            else:
                missing.append(path)
                break
    return missing


def test_every_report_key_the_dashboard_reads_is_in_the_model() -> None:
    default = _default_metric((STATIC / "metrics.js").read_text(encoding="utf-8"))
    read: set[Path_] = set()
    for js in sorted(STATIC.glob("*.js")):
        read |= report_reads(js.read_text(encoding="utf-8"), default)
    assert ("compressed", "sparsity", "overall") in read  # the reader found report.js's reads
    assert ("dense", "primary_metric", "value") in read
    assert missing_from_schema(read) == []


def test_a_key_the_model_lacks_is_found() -> None:
    js = """
    export function figuresFromReport(report) {
      const c = report.compressed || {};
      return { a: dig(c, "sparsity", "overal"), b: report.int8 ? primaryMetric(report.int8) : null,
               t: dig(report, "pruning", "target_sparsity"), q: report.queue_position };
    }
    """
    read = report_reads(js, "accuracy")
    assert ("int8", "primary_metric", "name") in read and ("int8", "accuracy") in read
    assert missing_from_schema(read) == [("compressed", "sparsity", "overal"), ("queue_position",)]
