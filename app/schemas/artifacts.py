"""Artifact responses."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from app.db.models import Artifact
from app.schemas.common import UtcDateTime

KINDS = (
    "model, model_int8 (the HF model folders, .tar.gz), model_onnx, model_int8_onnx, report "
    "(report.json), report_md, plot_sparsity, plot_accuracy, plot_latency_size, plot_structured "
    "(PNG); one of each kind per job."
)

# What a user must know before deploying a kind (null for the others).
NOTES = {
    "model_int8": "PyTorch int8 weights: needs Scalpel's code to load "
    "(worker.compression.load_int8_state_dict, as its quantization.json says); to deploy int8, "
    "use model_int8_onnx, which runs in ONNX Runtime alone.",
    "model_int8_onnx": "The recommended int8 artifact: runs in ONNX Runtime alone.",
}
RECOMMENDED = ("model_onnx", "model_int8_onnx")


class ArtifactOut(BaseModel):
    id: uuid.UUID = Field(
        description="The artifact's id.", examples=["5f0c1f9e-8d2b-4c6a-9e3f-2b7d1a4c8e60"]
    )
    job_id: uuid.UUID = Field(
        description="The job that made it.", examples=["0b7d3f8e-2a1c-4d5e-9f60-1a2b3c4d5e6f"]
    )
    kind: str = Field(description=f"What it is: {KINDS}", examples=["model_int8_onnx"])
    filename: str = Field(
        description="The download's file name (Content-Disposition).",
        examples=["model-int8.onnx"],
    )
    media_type: str = Field(
        description="The download's Content-Type.", examples=["application/octet-stream"]
    )
    size_bytes: int = Field(description="The file's size, in bytes.", examples=[23418772])
    sha256: str = Field(
        description="The file's SHA-256, lowercase hex (also its ETag and X-Checksum-SHA256).",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )
    created_at: UtcDateTime = Field(
        description="When the worker registered it.", examples=["2026-01-02T03:04:05.678Z"]
    )
    download_url: str = Field(
        description="GET it for the file (path relative to the API's base URL).",
        examples=["/v1/artifacts/5f0c1f9e-8d2b-4c6a-9e3f-2b7d1a4c8e60"],
    )
    note: str | None = Field(
        default=None,
        description="What to know before deploying this kind (how it loads); null for most.",
        examples=[NOTES["model_int8"]],
    )
    recommended: bool = Field(
        default=False,
        description="The artifact to deploy: the ONNX files (fp32, and int8 when the job "
        "quantizes), which run in ONNX Runtime with no Scalpel code.",
        examples=[True],
    )
    expired_at: UtcDateTime | None = Field(
        default=None,
        description="When artifact retention removed the file (its download is then a 410 "
        "`artifact_expired`); null while it is kept.",
        examples=[None, "2026-02-01T03:04:05Z"],
    )

    @classmethod
    def of(cls, a: Artifact) -> ArtifactOut:
        return cls(
            id=a.id, job_id=a.job_id, kind=a.kind, filename=a.filename,
            media_type=a.media_type, size_bytes=a.size_bytes, sha256=a.sha256,
            created_at=a.created_at, download_url=f"/v1/artifacts/{a.id}",
            expired_at=a.expired_at, note=NOTES.get(a.kind), recommended=a.kind in RECOMMENDED,
        )  # fmt: skip


class ArtifactList(BaseModel):
    items: list[ArtifactOut] = Field(description="The job's artifacts, each kind at most once.")
