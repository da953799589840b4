"""The job-spec reference (docs/job-spec.md), generated from the JobSpec model's JSON schema.

Every field of `POST /v1/jobs`'s body as a row: its dotted path, type, default, bounds and
description, section by section, so that the reference cannot drift from what the API
validates (tests/scripts/test_spec_reference.py fails when the committed file differs).

Usage: ``python scripts/spec_reference.py`` rewrites docs/job-spec.md; ``--check`` exits 1
when it is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.schemas.job_spec import JobSpec  # noqa: E402  (torch-free)

OUT = ROOT / "docs" / "job-spec.md"
Schema = dict[str, Any]

BOUNDS = (
    ("minimum", ">= {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "<= {}"),
    ("exclusiveMaximum", "< {}"),
    ("minLength", "length >= {}"),
    ("maxLength", "length <= {}"),
    ("minItems", ">= {} items"),
    ("maxItems", "<= {} items"),
)

HEADER = """# Job spec reference

The body of `POST /v1/jobs`. Generated from the API's own schema by
`python scripts/spec_reference.py` (a test fails when this file is stale); the OpenAPI
document at `/docs` holds the same. A field left out takes its default; a `recipe` is
deep-merged under the fields given. Every refusal is a 422 problem naming the field.
"""


def _ref(schema: Schema, defs: dict[str, Schema]) -> Schema:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _branches(schema: Schema) -> list[Schema]:
    return list(schema.get("anyOf") or schema.get("oneOf") or [schema])


def _type(schema: Schema, defs: dict[str, Schema]) -> str:
    parts: list[str] = []
    for branch in _branches(schema):
        if "$ref" in branch:
            parts.append("object")
            continue
        if "enum" in branch:
            parts.append(" | ".join(f"`{json.dumps(v)}`" for v in branch["enum"]))
        elif "const" in branch:
            parts.append(f"`{json.dumps(branch['const'])}`")
        elif branch.get("type") == "array":
            parts.append(f"list of {_type(branch.get('items', {}), defs)}")
        elif branch.get("type") == "object" and "additionalProperties" in branch:
            parts.append(f"map of {_type(branch['additionalProperties'], defs)}")
        elif "type" in branch:
            kind = str(branch["type"])
            parts.append(f"{kind} (URL)" if branch.get("format") == "uri" else kind)
        else:
            parts.append("any")
    return " or ".join(dict.fromkeys(parts))


def _bounds(schema: Schema) -> str:
    found: list[str] = []
    for branch in _branches(schema):
        found += [fmt.format(branch[key]) for key, fmt in BOUNDS if key in branch]
        if branch.get("type") == "array":
            item = branch.get("items", {})
            found += [f"each {fmt.format(item[key])}" for key, fmt in BOUNDS if key in item]
    return ", ".join(dict.fromkeys(found))


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def _default(schema: Schema) -> str:
    if "default" not in schema:
        return "required" if schema.get("_required") else ""
    return f"`{json.dumps(schema['default'])}`"


def _objects(schema: Schema, defs: dict[str, Schema]) -> list[Schema]:
    return [_ref(b, defs) for b in _branches(schema) if "$ref" in b]


def _variant(obj: Schema) -> str:
    """A union member's name: its `kind` constant (or default) when it has one, else its title."""
    kind = obj.get("properties", {}).get("kind", {})
    return str(kind.get("const", kind.get("default", obj.get("title", "?"))))


def rows(model: Schema, defs: dict[str, Schema], prefix: str = "") -> list[list[str]]:
    """One row per field, depth first: nested objects follow their parent's row."""
    out: list[list[str]] = []
    required = set(model.get("required", []))
    for name, field in model.get("properties", {}).items():
        path = f"{prefix}{name}"
        field = dict(field, _required=name in required)
        nested = _objects(field, defs)
        description = field.get("description") or (nested[0].get("description") if nested else "")
        out.append(
            [f"`{path}`", _type(field, defs), _default(field), _bounds(field), description or ""]
        )
        for obj in nested:
            variant = f"[{_variant(obj)}]" if len(nested) > 1 else ""
            out += rows(obj, defs, prefix=f"{path}{variant}.")
    return out


def render() -> str:
    schema = JobSpec.model_json_schema()
    defs = schema.get("$defs", {})
    lines = [HEADER, "| field | type | default | bounds | description |", "|---|---|---|---|---|"]
    for row in rows(schema, defs):
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 when docs/job-spec.md is stale")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python scripts/spec_reference.py")
            return 1
        return 0
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
