"""A stand-in for the job store's uploaded-data-set lookup: the one record it was given."""

from __future__ import annotations

import uuid

from worker.job_store import DatasetRecord


class OneDataset:
    def __init__(self, rec: DatasetRecord | None = None) -> None:
        self.rec = rec

    def get_uploaded_dataset(self, dataset_id: uuid.UUID) -> DatasetRecord | None:
        return self.rec if self.rec is not None and self.rec.id == dataset_id else None
