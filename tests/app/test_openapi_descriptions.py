"""The OpenAPI document describes everything: every property of every component schema (and
every pattern of property names) has a description, every parameter too, and every property
of the job spec an example; the job's `metrics` is a schema of its own, not a free-form
object. A field added without them fails here."""

from __future__ import annotations

from typing import Any

import pytest

from app.main import create_app
from app.schemas.job_metrics import PREFIXED_METRIC, JobMetrics

Schema = dict[str, Any]
REF = "#/components/schemas/"


@pytest.fixture(scope="module")
def doc() -> Schema:
    return create_app().openapi()


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].removeprefix(REF)} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def reachable(schemas: dict[str, Schema], root: str) -> set[str]:
    """`root` and every component schema its properties refer to, transitively."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += refs(schemas[name]) - seen
    return seen


def properties(schemas: dict[str, Schema]) -> list[tuple[str, Schema]]:
    out = []
    for name, schema in sorted(schemas.items()):
        for key, prop in schema.get("properties", {}).items():
            out.append((f"{name}.{key}", prop))
        for pattern, prop in schema.get("patternProperties", {}).items():
            out.append((f"{name}[{pattern}]", prop))
    return out


def test_every_component_property_has_a_description(doc: Schema) -> None:
    undocumented = [
        w for w, p in properties(doc["components"]["schemas"]) if not p.get("description")
    ]
    assert undocumented == [], f"{len(undocumented)} properties without a description"


def test_every_parameter_has_a_description(doc: Schema) -> None:
    undocumented = [
        f"{method.upper()} {path} {p['in']}:{p['name']}"
        for path, item in doc["paths"].items()
        for method, op in item.items()
        for p in op.get("parameters", [])
        if not p.get("description")
    ]
    assert undocumented == []


def test_every_job_spec_property_has_an_example(doc: Schema) -> None:
    schemas = doc["components"]["schemas"]
    spec = reachable(schemas, "JobSubmission")
    assert {
        "JobSubmission",
        "DatasetSpec",
        "PruningSpec",
        "GradualSchedule",
        "TrainingSpec",
    } <= spec
    missing = [w for w, p in properties({n: schemas[n] for n in spec}) if not p.get("examples")]
    assert missing == []


def test_the_checks_see_an_undocumented_property() -> None:
    """The walk above finds a property without a description or example where it is."""
    schemas = {"A": {"properties": {"x": {"type": "string", "description": "d"},
                                    "y": {"$ref": f"{REF}B"}}},
               "B": {"properties": {"z": {"type": "integer"}}}}  # fmt: skip
    assert reachable(schemas, "A") == {"A", "B"}
    bare = [w for w, p in properties(schemas) if not p.get("description")]
    assert bare == ["A.y", "B.z"]


def test_job_metrics_is_a_schema_with_every_key(doc: Schema) -> None:
    schemas = doc["components"]["schemas"]
    job = schemas["JobOut"]["properties"]["metrics"]
    assert job["$ref"] == f"{REF}JobMetrics"
    metrics = schemas["JobMetrics"]
    assert set(metrics["properties"]) == set(JobMetrics.model_fields)
    assert metrics["properties"]["primary_metric"]["anyOf"][0] == {"$ref": f"{REF}NamedMetric"}
    assert set(schemas["NamedMetric"]["properties"]) == {"name", "value"}
    assert metrics["patternProperties"][PREFIXED_METRIC]["type"] == ["number", "null"]
    assert metrics["additionalProperties"] is True  # older jobs' keys
