"""The report of a compression job as typed models (torch-free: the worker writes it with
them, and report.md, the plots, bench/ and the API read it with them). `Report.model_validate`
loads a report.json of any version; `report.model_dump(mode="json")` is report.json."""

from __future__ import annotations

from app.catalog import METRIC_NAMES
from app.reports.base import OpenSection, Section
from app.reports.onnx import Compaction, CompactionLayer, OnnxOutput, OnnxSection
from app.reports.report import (
    SCHEMA_VERSION,
    ArtifactRef,
    CpuInfo,
    DatasetInfo,
    ModelInfo,
    Pruning,
    Report,
    ResumedFrom,
    TeacherCache,
    Versions,
)
from app.reports.scores import (
    DEFAULT_METRIC,
    AppliedStep,
    ClassScores,
    CompressedBlock,
    DenseBlock,
    FileSize,
    Int8Block,
    Latency,
    OnnxBlock,
    Parity,
    PrimaryMetric,
    Scored,
    Scores,
    Sparsity,
    Speedup,
)
from app.reports.structured import StructuredFinal, StructuredSection, StructuredStep

__all__ = [
    "DEFAULT_METRIC",
    "METRIC_NAMES",
    "SCHEMA_VERSION",
    "AppliedStep",
    "ArtifactRef",
    "ClassScores",
    "Compaction",
    "CompactionLayer",
    "CompressedBlock",
    "CpuInfo",
    "DatasetInfo",
    "DenseBlock",
    "FileSize",
    "Int8Block",
    "Latency",
    "ModelInfo",
    "OnnxBlock",
    "OnnxOutput",
    "OnnxSection",
    "OpenSection",
    "Parity",
    "PrimaryMetric",
    "Pruning",
    "Report",
    "ResumedFrom",
    "Scored",
    "Scores",
    "Section",
    "Sparsity",
    "Speedup",
    "StructuredFinal",
    "StructuredSection",
    "StructuredStep",
    "TeacherCache",
    "Versions",
]
