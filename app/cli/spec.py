"""A job spec from a YAML or JSON file, with command-line flags on top."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


class SpecError(ValueError):
    pass


def load_spec_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"{path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{path} must hold a mapping (a job spec), not {type(data).__name__}")
    return data


def set_path(spec: dict[str, Any], dotted: str, value: Any) -> None:
    """set_path(spec, "pruning.sparsity", 0.9), making the objects on the way."""
    keys = dotted.split(".")
    if not all(keys):
        raise SpecError(f"bad key {dotted!r}")
    node = spec
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {} if child is None else {"name": child} if key == "dataset" else None
            if child is None:
                raise SpecError(f"{dotted}: {key!r} is not an object")
            node[key] = child
        node = child
    node[keys[-1]] = value


def parse_assignment(text: str) -> tuple[str, Any]:
    """`training.max_steps=4` -> ("training.max_steps", 4); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set wants KEY=VALUE, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def parse_labels(items: list[str]) -> dict[str, str]:
    """`--label team=search` (repeatable) -> {"team": "search"}; the value may hold '='. The
    API checks the keys and values; a key given twice with two values is refused here."""
    out: dict[str, str] = {}
    for text in items:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise SpecError(f"--label wants KEY=VALUE, got {text!r}")
        if out.get(key, value) != value:
            raise SpecError(f"--label {key} is given twice, with {out[key]!r} and {value!r}")
        out[key] = value
    return out


def build_spec(
    spec_file: Path | None,
    flags: dict[str, Any],
    assignments: list[str],
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The file, then each flag given (dotted path -> value) and the labels (over the file's,
    key by key), then each --set."""
    spec = load_spec_file(spec_file) if spec_file else {}
    for dotted, value in flags.items():
        if value is not None:
            set_path(spec, dotted, value)
    if labels:
        given = spec.get("labels")
        spec["labels"] = {**(given if isinstance(given, dict) else {}), **labels}
    for text in assignments:
        set_path(spec, *parse_assignment(text))
    if not spec.get("model"):
        raise SpecError("no model: give --model or a --spec file with one")
    if not spec.get("dataset"):
        raise SpecError("no dataset: give --dataset or a --spec file with one")
    return spec
