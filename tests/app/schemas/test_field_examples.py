"""Every example a schema field gives (what the OpenAPI document shows) is a value the field
accepts: each field of every model in app.schemas, each example validated as JSON, strictly,
against the field's type and constraints alone; and each model-level example against its
model."""

from __future__ import annotations

import importlib
import json
import pkgutil
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

import app.schemas
from app.schemas.job_spec import PruningSpec, TrainingSpec


def schema_models() -> list[type[BaseModel]]:
    """The models defined in app.schemas' modules (not those they import)."""
    found: list[type[BaseModel]] = []
    for info in pkgutil.iter_modules(app.schemas.__path__):
        module = importlib.import_module(f"app.schemas.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseModel)
                and value.__module__ == module.__name__
            ):
                found.append(value)
    return found


def field_examples() -> list[tuple[str, FieldInfo, Any]]:
    out = []
    for model in schema_models():
        for name, info in model.model_fields.items():
            for i, example in enumerate(info.examples or []):
                out.append((f"{model.__name__}.{name}[{i}]", info, example))
    return out


def model_examples() -> list[tuple[str, type[BaseModel], Any]]:
    out = []
    for model in schema_models():
        extra = model.model_config.get("json_schema_extra")
        examples = extra.get("examples", []) if isinstance(extra, dict) else []
        assert isinstance(examples, list)
        out += [(f"{model.__name__}[{i}]", model, e) for i, e in enumerate(examples)]
    return out


FIELD_EXAMPLES = field_examples()
MODEL_EXAMPLES = model_examples()


def adapter(info: FieldInfo) -> TypeAdapter[Any]:
    """The field's type with its constraints and validators (Field(ge=...), AfterValidator)."""
    if info.metadata:
        return TypeAdapter(Annotated[(info.annotation, *info.metadata)])
    return TypeAdapter(info.annotation)


def test_the_models_are_found_and_most_fields_have_examples() -> None:
    names = {m.__name__ for m in schema_models()}
    assert {"JobSpec", "JobSubmission", "JobOut", "JobMetrics", "Problem", "ArtifactOut"} <= names
    assert len(FIELD_EXAMPLES) > 150


@pytest.mark.parametrize(
    ("where", "info", "example"), FIELD_EXAMPLES, ids=[w for w, _, _ in FIELD_EXAMPLES]
)
def test_each_field_example_validates(where: str, info: FieldInfo, example: Any) -> None:
    adapter(info).validate_json(json.dumps(example), strict=True)


@pytest.mark.parametrize(
    ("where", "model", "example"), MODEL_EXAMPLES, ids=[w for w, _, _ in MODEL_EXAMPLES]
)
def test_each_model_example_validates(where: str, model: type[BaseModel], example: Any) -> None:
    model.model_validate_json(json.dumps(example), strict=True)


def test_an_example_out_of_bounds_is_refused() -> None:
    """The check above can fail: a field's bounds and strict types apply to its example."""
    with pytest.raises(ValueError, match=r"less than or equal to 0\.99"):
        adapter(PruningSpec.model_fields["sparsity"]).validate_json("80", strict=True)
    with pytest.raises(ValueError, match="valid integer"):
        adapter(TrainingSpec.model_fields["seed"]).validate_json('"42"', strict=True)
