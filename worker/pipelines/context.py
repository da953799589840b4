"""What a pipeline run is given: settings, device, reporter, uploads lookup, store, folders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from app.settings import Settings
from app.storage import ArtifactStore
from worker.pipelines.models import ModelLookup
from worker.pipelines.progress import BaseReporter
from worker.pipelines.tasks.base import DatasetLookup


class Uploads(DatasetLookup, ModelLookup, Protocol):
    pass


# (kind, local file, download filename, media type) -> the stored object's sha256
ArtifactSink = Callable[[str, Path, str, str], str]


@dataclass
class PipelineContext:
    settings: Settings
    device: torch.device
    reporter: BaseReporter
    uploads: Uploads
    store: ArtifactStore
    scratch: Path  # this job's scratch folder (removed by the runner)
    add_artifact: ArtifactSink
    job_id: str = ""
    latency_iters: tuple[int, int] = (30, 2)  # timed iterations at batch 1 and batch 32
