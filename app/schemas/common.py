"""Shared schema pieces."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)


def _as_utc(value: datetime) -> datetime:
    """A naive value (SQLite hands back naive datetimes) is UTC; an aware one is moved to UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _rfc3339(value: datetime) -> str:
    return _as_utc(value).isoformat().replace("+00:00", "Z")


# Every datetime the API returns: RFC 3339 in UTC with its zone (`2026-01-02T03:04:05.678Z`).
UtcDateTime = Annotated[
    datetime,
    AfterValidator(_as_utc),
    PlainSerializer(_rfc3339, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class StrictModel(BaseModel):
    """Request models: unknown fields are an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class SpecModel(StrictModel):
    """Strict JSON types: an integer field takes only a JSON integer (not "2", true or 2.0), a
    number field an integer or a float (not "0.5" or true), a boolean only true or false."""

    model_config = ConfigDict(strict=True)


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable machine-readable code. Members without a value
    are left out."""

    type: str = Field(
        default="about:blank",
        description="RFC 9457 problem type: about:blank (the status says it all).",
        examples=["about:blank"],
    )
    title: str = Field(
        description="A short summary: the status's phrase or the kind of error.",
        examples=["Request validation failed"],
    )
    status: int = Field(description="The HTTP status code.", examples=[422])
    detail: str | None = Field(
        default=None,
        description="What went wrong with this request, for people.",
        examples=["pruning.sparsity: Input should be less than or equal to 0.99"],
    )
    instance: str | None = Field(
        default=None, description="The request's path.", examples=["/v1/jobs"]
    )
    code: str = Field(
        description="A stable machine-readable code: branch on this, not on detail.",
        examples=["validation_error"],
    )
    field: str | None = Field(
        default=None,
        description="The request field at fault, dotted (`pruning.sparsity`), a query or form "
        "parameter's name, or a header's; absent when no single field is.",
        examples=["pruning.sparsity"],
    )
    errors: list[dict[str, object]] | None = Field(
        default=None,
        description="Each error, for a problem with several: a validation error's `loc`, "
        "`field`, `msg` and `type`; other problems' own members (`component`, `msg`...).",
        examples=[[{"loc": ["body", "pruning", "sparsity"], "field": "pruning.sparsity",
                    "msg": "Input should be less than or equal to 0.99",
                    "type": "less_than_equal"}]],
    )  # fmt: skip
