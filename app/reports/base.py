"""What every section of the report has in common.

A section's unknown keys are an error (the worker builds the report from these models, so a key
it writes that no model declares fails where it is written, never silently in a reader), except
in the `structured` section (:class:`OpenSection`), whose stage adds keys of its own. A section
dumps the keys it was given (validated from JSON or passed to its constructor) and no others:
report.json keeps its shape (an eval block of one task has no `null` metrics of the others) and
an old report, with fewer keys, dumps as it was written.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_serializer(mode="wrap")
    def _given_keys(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        given = self.model_fields_set | set(self.model_extra or {})
        return {k: v for k, v in data.items() if k in given}


class OpenSection(Section):
    """A section that keeps (and dumps) keys it does not declare."""

    model_config = ConfigDict(extra="allow")
