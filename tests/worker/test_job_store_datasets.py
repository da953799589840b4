"""The uploaded data set the worker reads: its task and what the upload's checks recorded
(the tag scheme, the score range), from the row the API wrote."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from sqlalchemy.orm import Session

from app.catalog import TaskName
from app.services import datasets
from app.settings import Settings
from app.tenancy import Caller
from tests.app.routes.test_dataset_tasks import STS_CSV, conll, squad_json
from tests.factories.tenants import default_tenant_id
from worker.job_store import JobStore


def store(db: Session) -> JobStore:
    return JobStore(lambda: Session(bind=db.connection(), join_transaction_mode="create_savepoint"))


def uploaded(db: Session, tmp_path: Path, data: bytes, filename: str, task: TaskName) -> uuid.UUID:
    settings = Settings(storage_dir=tmp_path / "store", work_dir=tmp_path / "work")
    row = datasets.upload(
        db, settings, io.BytesIO(data), filename, name=None, fmt=None, text_columns=None,
        label_column=None, caller=Caller(default_tenant_id(db)), task=task,
    )  # fmt: skip
    db.commit()
    return row.id


def test_each_tasks_record_carries_what_the_worker_needs(
    db_session: Session, tmp_path: Path
) -> None:
    jobs = store(db_session)
    sts = jobs.get_uploaded_dataset(uploaded(db_session, tmp_path, STS_CSV.encode(), "s.csv",
                                             "regression"))  # fmt: skip
    assert sts is not None
    assert (sts.task, sts.label_column, sts.labels) == ("regression", "score", [])
    assert (sts.score_range, sts.tag_scheme) == ((0.0, 5.0), None)
    ner = jobs.get_uploaded_dataset(uploaded(db_session, tmp_path, conll(), "n.conll",
                                             "token_classification"))  # fmt: skip
    assert ner is not None
    assert (ner.task, ner.format, ner.label_column) == ("token_classification", "conll", "4")
    assert (ner.tag_scheme, ner.score_range, ner.num_rows) == ("IOB1", None, 9)
    qa = jobs.get_uploaded_dataset(uploaded(db_session, tmp_path, squad_json(), "q.json",
                                            "question_answering"))  # fmt: skip
    assert qa is not None
    assert (qa.task, qa.format, qa.num_rows, qa.tag_scheme) == ("question_answering", "squad",
                                                                9, None)  # fmt: skip
