"""docs/job-spec.md is generated from JobSpec and must match it."""

from __future__ import annotations

import types
import typing

from pydantic import BaseModel

from app.schemas.job_spec import JobSpec
from scripts import spec_reference


def field_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every field's dotted path, walked from the pydantic models (not their JSON schema)."""
    out: set[str] = set()
    for name, info in model.model_fields.items():
        path = prefix + name
        out.add(path)
        members = [a for a in _flatten(info.annotation) if _is_model(a)]
        for sub in members:
            variant = f"[{_variant(sub)}]" if len(members) > 1 else ""
            out |= field_paths(sub, f"{path}{variant}.")
    return out


def _flatten(annotation: object) -> list[object]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [leaf for arg in typing.get_args(annotation) for leaf in _flatten(arg)]
    return [annotation]


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _variant(model: type[BaseModel]) -> str:
    kind = model.model_fields.get("kind")
    return str(typing.get_args(kind.annotation)[0]) if kind is not None else model.__name__


def test_committed_reference_is_current() -> None:
    assert spec_reference.OUT.read_text() == spec_reference.render(), (
        "docs/job-spec.md is stale: run python scripts/spec_reference.py"
    )


def test_every_field_has_a_row() -> None:
    rendered = {row[0].strip("`") for row in spec_reference.rows(
        JobSpec.model_json_schema(), JobSpec.model_json_schema()["$defs"]
    )}  # fmt: skip
    assert rendered == field_paths(JobSpec)


def test_check_flags_a_stale_file(tmp_path, monkeypatch) -> None:
    stale = tmp_path / "job-spec.md"
    stale.write_text("old\n")
    monkeypatch.setattr(spec_reference, "OUT", stale)
    assert spec_reference.main(["--check"]) == 1
    stale.write_text(spec_reference.render())
    assert spec_reference.main(["--check"]) == 0
