"""The OpenAPI document describes everything: every property of every component schema (and
every pattern of property names) has a description and an example (one that refers to another
schema has its examples there), every parameter a description; the upload forms' examples
are values their fields accept (the schemas' own: tests/app/schemas/test_field_examples.py);
the job's `metrics` is a schema of its own, not a free-form object. A field added without them
fails here."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, get_args, get_origin, get_type_hints

import pytest
from fastapi import UploadFile
from fastapi.params import Form
from pydantic import TypeAdapter

from app.main import create_app
from app.routes.datasets import upload_dataset
from app.routes.models import upload_model
from app.schemas.job_metrics import PREFIXED_METRIC, JobMetrics
from app.services.models import ARCHIVE_SUFFIXES
from app.services.task_uploads import SUFFIXES

Schema = dict[str, Any]
REF = "#/components/schemas/"


@pytest.fixture(scope="module")
def doc() -> Schema:
    return create_app().openapi()


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


def refers(prop: Schema) -> bool:
    """The property is another schema (a $ref, an array or map of them, or an anyOf with one):
    its examples are that schema's properties'."""
    if isinstance(prop.get("$ref"), str):
        return True
    items, values = prop.get("items"), prop.get("additionalProperties")
    return (
        (isinstance(items, dict) and refers(items))
        or (isinstance(values, dict) and refers(values))
        or any(refers(option) for option in prop.get("anyOf", []))
    )


def without_examples(schemas: dict[str, Schema]) -> list[str]:
    return [w for w, p in properties(schemas) if not p.get("examples") and not refers(p)]


def test_every_component_property_has_an_example(doc: Schema) -> None:
    schemas = doc["components"]["schemas"]
    assert {"JobSubmission", "DatasetSpec", "PruningSpec", "TrainingSpec", "JobDryRun",
            "WebhookPruningStepEvent", "Body_upload_dataset_v1_datasets_post",
            "Body_upload_model_v1_models_post"} <= set(schemas)  # fmt: skip
    missing = without_examples(schemas)
    assert missing == [], f"{len(missing)} properties without an example"


def test_the_checks_see_an_undocumented_property() -> None:
    """The checks above find a property without a description or example where it is, and
    let a property that is another schema give its examples there."""
    schemas = {"A": {"properties": {"x": {"type": "string", "description": "d"},
                                    "y": {"$ref": f"{REF}B"}}},
               "B": {"properties": {"z": {"type": "integer"}}}}  # fmt: skip
    bare = [w for w, p in properties(schemas) if not p.get("description")]
    assert bare == ["A.y", "B.z"]
    assert without_examples(schemas) == ["A.x", "B.z"]
    ref = {"$ref": f"{REF}B"}
    others = {"C": {"properties": {"l": {"type": "array", "items": ref},
                                   "m": {"type": "object", "additionalProperties": ref},
                                   "n": {"anyOf": [ref, {"type": "null"}]},
                                   "o": {"type": "array", "items": {"type": "string"}},
                                   "p": {"anyOf": [{"type": "string"}, {"type": "null"}],
                                         "examples": ["e"]}}}}  # fmt: skip
    assert without_examples(others) == ["C.o"]


def form_fields(endpoint: Callable[..., Any]) -> list[tuple[str, Any, Form]]:
    """An upload endpoint's form fields (File is a Form): (name, type, its Form(...))."""
    out = []
    for name, hint in get_type_hints(endpoint, include_extras=True).items():
        if get_origin(hint) is Annotated:
            base, *extras = get_args(hint)
            out += [(name, base, e) for e in extras if isinstance(e, Form)]
    return out


def form_adapter(base: Any, info: Form) -> TypeAdapter[Any]:
    """The field's type with its constraints (Form(max_length=...))."""
    return TypeAdapter(Annotated[(base, *info.metadata)] if info.metadata else base)


FORM_EXAMPLES = [
    (f"{endpoint.__name__}.{name}[{i}]", base, info, example)
    for endpoint in (upload_dataset, upload_model)
    for name, base, info in form_fields(endpoint)
    for i, example in enumerate(info.examples or [])
]


def test_the_upload_forms_fields_are_found() -> None:
    """Every form field of both uploads, each with an example, is checked below."""
    found = {w.split("[")[0] for w, *_ in FORM_EXAMPLES}
    assert len(found) == 10 and {"upload_dataset.file", "upload_model.name"} <= found


@pytest.mark.parametrize(
    ("where", "base", "info", "example"), FORM_EXAMPLES, ids=[w for w, *_ in FORM_EXAMPLES]
)
def test_each_upload_form_example_validates(
    where: str, base: Any, info: Form, example: Any
) -> None:
    """A form field's example is a value it takes; a file's, a file name it takes."""
    if base is UploadFile:
        dataset = where.startswith("upload_dataset.")
        suffixes = set().union(*SUFFIXES.values()) if dataset else set(ARCHIVE_SUFFIXES)
        assert isinstance(example, str) and example.endswith(tuple(suffixes))
    else:
        form_adapter(base, info).validate_json(json.dumps(example), strict=True)


def test_a_form_example_too_long_is_refused() -> None:
    """The check above can fail: a form field's max_length applies to its example."""
    [(_, base, info)] = [f for f in form_fields(upload_model) if f[0] == "name"]
    with pytest.raises(ValueError, match="at most 255 characters"):
        form_adapter(base, info).validate_json(json.dumps("m" * 256))


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
