"""What `scalpel jobs` calls things: a job by its name (else the first characters of its id),
its model and data set by their upload names (a built-in one is named already)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from scalpel_client import ScalpelAPIError, ScalpelClient

SHORT_ID = 8  # characters of an id shown where there is no name
MAX_LOOKUPS = 20  # uploads read by name per listing; more distinct ones keep their short id


def is_id(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def short_id(text: str) -> str:
    return text[:SHORT_ID] if is_id(text) else text


def job_label(job: Mapping[str, Any]) -> str:
    name = job.get("name")
    return str(name) if name else short_id(str(job.get("id", "")))


def spec_refs(job: Mapping[str, Any]) -> tuple[str, str]:
    """(model, data set) as the job's spec names them."""
    spec = job.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    dataset = spec.get("dataset")
    name = dataset.get("name", "") if isinstance(dataset, dict) else dataset or ""
    return str(spec.get("model", "")), str(name)


def upload_names(client: ScalpelClient, jobs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Upload id -> its name, for the uploaded models and data sets these jobs name: each id
    read once with GET /v1/models/{id} or /v1/datasets/{id}, in the jobs' order, at most
    MAX_LOOKUPS of them (the rest keep their short id). A deleted upload (404) has no entry
    either; any other error is the command's."""
    reads: tuple[Callable[[str], Mapping[str, Any]], ...] = (client.get_model, client.get_dataset)
    wanted: dict[str, Callable[[str], Mapping[str, Any]]] = {}
    for refs in map(spec_refs, jobs):
        for upload_id, get in zip(refs, reads, strict=True):
            if is_id(upload_id):
                wanted.setdefault(upload_id, get)
    names: dict[str, str] = {}
    for upload_id, get in itertools.islice(wanted.items(), MAX_LOOKUPS):
        try:
            item = get(upload_id)
        except ScalpelAPIError as exc:
            if exc.status != 404:
                raise
            continue
        names[upload_id] = str(item.get("name") or short_id(upload_id))
    return names
