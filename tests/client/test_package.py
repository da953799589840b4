"""scalpel_client is its own package: installed from client/, httpx its only import of note,
and its typed results key for key what the API's response models send."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

import scalpel_client
from app.schemas import artifacts, job_submission, jobs, recipes, uploads, webhooks
from scalpel_client import types
from tests.e2e.harness import ROOT

FORBIDDEN = ("fastapi", "sqlalchemy", "celery", "boto3", "torch", "app", "worker", "pydantic")
CLOSURE = """
import sys
import scalpel_client, scalpel_client.aio, scalpel_client.sync, scalpel_client.events
import scalpel_client.webhooks, scalpel_client.types, scalpel_client.download
forbidden = {forbidden!r}
bad = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
assert not bad, bad
assert "httpx" in sys.modules
print(scalpel_client.__file__)
"""


def test_importing_the_client_pulls_in_no_server_code(tmp_path: Path) -> None:
    # Run from elsewhere: the package comes from its install, not from the repository root.
    r = subprocess.run(
        [sys.executable, "-c", CLOSURE.format(forbidden=FORBIDDEN)], cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    location = Path(r.stdout.strip())
    assert location.parent == ROOT / "client" / "scalpel_client"
    assert (location.parent / "py.typed").is_file()


def test_the_client_is_not_under_app() -> None:
    assert not (ROOT / "app" / "client").exists()
    assert Path(scalpel_client.__file__).is_relative_to(ROOT / "client")


PAIRS: list[tuple[Any, type[BaseModel]]] = [
    (types.Job, jobs.JobOut),
    (types.JobError, jobs.JobError),
    (types.JobLinks, jobs.JobLinks),
    (types.JobWebhook, webhooks.JobWebhook),
    (types.JobEvent, jobs.JobEventOut),
    (types.EventPage, jobs.JobEventPage),
    (types.Artifact, artifacts.ArtifactOut),
    (types.UploadedModel, uploads.ModelOut),
    (types.UploadedDataset, uploads.DatasetOut),
    (types.Recipe, recipes.RecipeOut),
    (types.JobDryRun, job_submission.JobDryRun),
    (types.MemoryEstimate, job_submission.MemoryEstimate),
    (types.MemoryTerm, job_submission.MemoryTerm),
    (types.TimeEstimate, job_submission.TimeEstimate),
    (types.TimeStep, job_submission.TimeStep),
]


@pytest.mark.parametrize(("typed", "model"), PAIRS, ids=[t.__name__ for t, _ in PAIRS])
def test_typed_results_have_the_response_models_keys(typed: Any, model: type[BaseModel]) -> None:
    """A field the API adds or drops shows up here: add it to scalpel_client.types too."""
    hints = typing.get_type_hints(typed)
    assert set(hints) == set(model.model_fields)
    assert typed.__required_keys__ == frozenset(model.model_fields)
    for name, field in model.model_fields.items():
        nullable = type(None) in get_args(field.annotation)
        assert (type(None) in get_args(hints[name])) == nullable, name


def test_job_status_is_the_apis() -> None:
    assert get_args(types.JobStatus) == get_args(jobs.JobStatus)
