"""Supported encoder families, one table entry each (torch-free: the API and the worker both
import it). `architecture_for(config)` finds a config.json's entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.architectures.families import ARCHITECTURES
from app.architectures.layout import (
    ATTENTION_ROLES,
    Architecture,
    AttentionHeads,
    Config,
    ConfigKeys,
    FeedForward,
    Matrix,
    Role,
    Shape,
)

BY_MODEL_TYPE: dict[str, Architecture] = {
    t: a for a in ARCHITECTURES.values() for t in a.model_types
}
SUPPORTED = ", ".join(a.display for a in ARCHITECTURES.values())


class UnsupportedArchitecture(Exception):
    def __init__(self, model_type: object) -> None:
        self.model_type = model_type
        self.message = (
            f"model_type {model_type!r} is not supported; supported families: {SUPPORTED} "
            f"(model_type {', '.join(repr(t) for t in BY_MODEL_TYPE)})"
        )
        super().__init__(self.message)


def architecture_for(config: Mapping[str, Any]) -> Architecture:
    """The table entry of a config.json (by `model_type`); UnsupportedArchitecture if none."""
    model_type = config.get("model_type")
    arch = BY_MODEL_TYPE.get(model_type) if isinstance(model_type, str) else None
    if arch is None:
        raise UnsupportedArchitecture(model_type)
    return arch


__all__ = [
    "ARCHITECTURES",
    "ATTENTION_ROLES",
    "BY_MODEL_TYPE",
    "SUPPORTED",
    "Architecture",
    "AttentionHeads",
    "Config",
    "ConfigKeys",
    "FeedForward",
    "Matrix",
    "Role",
    "Shape",
    "UnsupportedArchitecture",
    "architecture_for",
]  # fmt: skip
