"""Options the commands share. The choices of --quantization, --method and --structure are the
job spec's own Literals (app.schemas.job_spec), so `--help` lists every value the API takes and
a new one shows up there without an edit here."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, get_args

import typer
from pydantic import BaseModel

from app.catalog import TaskName
from app.schemas.job_spec import PruningSpec, QuantizationSpec
from scalpel_client import JobStatus


def spec_choices(model: type[BaseModel], field: str) -> Any:
    """The Literal type of one spec field (typer turns it into a choice)."""
    return model.model_fields[field].annotation


if TYPE_CHECKING:  # mypy sees the plain value type; typer gets the Literal at run time
    Quantization: TypeAlias = str
    PruningMethod: TypeAlias = str
    Structure: TypeAlias = str
else:
    Quantization = spec_choices(QuantizationSpec, "method")
    PruningMethod = spec_choices(PruningSpec, "method")
    Structure = spec_choices(PruningSpec, "structure")

# A repeatable choice: typer takes a list of an enum, not of a Literal.
if TYPE_CHECKING:
    StatusChoice: TypeAlias = str
else:
    StatusChoice = StrEnum("StatusChoice", {s: s for s in get_args(JobStatus)})

TaskOption = Annotated[
    TaskName | None, typer.Option(help="The task (default sequence_classification).")
]
QuietOption = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", help="Print only the new id on stdout, for scripts (overrides --json)."
    ),
]
