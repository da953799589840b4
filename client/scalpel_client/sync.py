"""ScalpelClient: the blocking client (httpx.Client)."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, overload
from urllib.parse import quote

import httpx

from scalpel_client import base
from scalpel_client.base import JSON, ClientBase, OnProgress, OnUpdate, Upload
from scalpel_client.config import ClientConfig
from scalpel_client.download import PartialDownload, target_path
from scalpel_client.errors import DigestMismatchError, ScalpelAPIError, ScalpelTimeoutError
from scalpel_client.events import Follow
from scalpel_client.retry import RetryPolicy, retry_error, retry_status
from scalpel_client.types import (
    Artifact,
    EventPage,
    Job,
    JobDryRun,
    JobEvent,
    JobStatus,
    Recipe,
    UploadedDataset,
    UploadedModel,
)


class ScalpelClient(ClientBase):
    """client = ScalpelClient(); job = client.submit_job(spec); client.wait(job["id"])."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        config_path: str | Path | None = None,
        retry: RetryPolicy | None = None,
        config: ClientConfig | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        """url and api_key: else $SCALPEL_URL / $SCALPEL_API_KEY, else the config file (see
        scalpel_client.config). http: a client of your own (its base URL must be the API's)."""
        super().__init__(
            url, api_key, timeout=timeout, config_path=config_path, retry=retry, config=config
        )
        # A given http client keeps its base URL and any headers it already sets.
        self._http = http or httpx.Client(base_url=self.config.url, timeout=self.config.timeout)
        for name, value in self._headers().items():
            self._http.headers.setdefault(name, value)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ScalpelClient:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, idempotent: bool, upload: Upload | None = None,
        **kwargs: Any,
    ) -> httpx.Response:  # fmt: skip
        retry = 0
        while True:
            try:
                if upload is None:
                    response = self._http.request(method, path, **kwargs)
                else:
                    with upload.path.open("rb") as f:
                        files, data = upload.files(f), upload.fields
                        response = self._http.request(method, path, files=files, data=data,
                                                      **kwargs)  # fmt: skip
            except httpx.TransportError as exc:
                retry += 1
                if retry >= self.retry.attempts or not retry_error(exc, idempotent):
                    raise base.connection_error(method, self._http, path, exc) from exc
                time.sleep(self.retry.delay(retry))
                continue
            if retry + 1 < self.retry.attempts and retry_status(response, idempotent):
                retry += 1
                time.sleep(self.retry.delay(retry, response))
                continue
            return response

    def _get(self, path: str, **params: Any) -> JSON:
        clean = {k: v for k, v in params.items() if v is not None}
        return base.decode_object(self._request("GET", path, idempotent=True, params=clean))

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[JSON]:
        token: str | None = None
        while True:
            page = self._get(path, **base.page_params(params, token))
            items, token = base.page_items(page)
            yield from items
            if not token:
                return

    # -- jobs ------------------------------------------------------------------------------

    @overload
    def submit_job(
        self, spec: Mapping[str, Any], idempotency_key: str | None = None, *,
        name: str | None = None, labels: Mapping[str, str] | None = None,
        dry_run: Literal[False] = False,
    ) -> Job: ...  # fmt: skip
    @overload
    def submit_job(
        self, spec: Mapping[str, Any], idempotency_key: str | None = None, *,
        name: str | None = None, labels: Mapping[str, str] | None = None,
        dry_run: Literal[True],
    ) -> JobDryRun: ...  # fmt: skip
    @overload
    def submit_job(
        self, spec: Mapping[str, Any], idempotency_key: str | None = None, *,
        name: str | None = None, labels: Mapping[str, str] | None = None, dry_run: bool,
    ) -> Job | JobDryRun: ...  # fmt: skip
    def submit_job(
        self, spec: Mapping[str, Any], idempotency_key: str | None = None, *,
        name: str | None = None, labels: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> Job | JobDryRun:  # fmt: skip
        """POST /v1/jobs. A key is always sent (a new one unless given), so retries are safe
        and a repeat with the same key answers the first job. spec may name a recipe
        (`{"recipe": "obert-80", "model": ..., "dataset": ...}`, see list_recipes); name and
        labels are the job's own (they replace any in spec). dry_run: every check of the
        submission, and the spec as it would be stored with its memory and time estimates
        (JobDryRun), without creating the job (no key is sent)."""
        body = base.submission(spec, name, labels)
        if dry_run:
            response = self._request("POST", "/v1/jobs", idempotent=True, json=body,
                                     params={"dry_run": "true"})  # fmt: skip
            return base.decode_typed(response, JobDryRun)
        key = idempotency_key or base.new_idempotency_key()
        response = self._request("POST", "/v1/jobs", idempotent=True, json=body,
                                 headers={"Idempotency-Key": key})  # fmt: skip
        return base.decode_typed(response, Job)

    def get_job(self, job_id: str) -> Job:
        return base.typed(self._get(base.job_path(job_id)), Job)

    def list_jobs(
        self, status: JobStatus | Sequence[JobStatus] | None = None,
        page_size: int | None = None, *, model: str | None = None, dataset: str | None = None,
        recipe: str | None = None, labels: Mapping[str, str] | None = None,
        created_after: str | datetime | None = None, created_before: str | datetime | None = None,
    ) -> Iterator[Job]:  # fmt: skip
        """Every job (newest first) that every filter given matches, following the cursor
        across pages: status (one, or any of several), model (a built-in name or an upload's
        id), dataset (spec.dataset.name), recipe (`name`, any version, or `name@version`),
        labels (all of them), created_after (inclusive) and created_before (exclusive),
        RFC 3339 strings or timezone-aware datetimes."""
        query = base.job_filters(status, model, dataset, recipe, labels, created_after,
                                 created_before)  # fmt: skip
        for item in self._pages("/v1/jobs", {**query, "limit": page_size}):
            yield base.typed(item, Job)

    def cancel_job(self, job_id: str) -> Job:
        response = self._request("POST", base.job_path(job_id, "cancel"), idempotent=False)
        return base.decode_typed(response, Job)

    def delete_job(self, job_id: str) -> None:
        """DELETE /v1/jobs/{id}: a finished job, with its events and artifacts (a queued or
        running one is a 409 `job_active`: cancel it first). Retried only when it never left,
        as a cancel is."""
        base.decode(self._request("DELETE", base.job_path(job_id), idempotent=False))

    def job_events(
        self, job_id: str, after: int | None = None, limit: int | None = None
    ) -> EventPage:
        """One page of the job's events after event id `after` (oldest first)."""
        page = self._get(base.job_path(job_id, "events"), after=after, limit=limit)
        items, _ = base.page_items(page)
        return {"items": base.typed_items(items, JobEvent), "next_after": page.get("next_after")}

    def iter_events(self, job_id: str, after: int | None = None) -> Iterator[JobEvent]:
        """Every event the job has so far, across pages (then stops; see stream_events)."""
        while True:
            page = self.job_events(job_id, after=after)
            yield from page["items"]
            if page["next_after"] is None:
                return
            after = page["next_after"]

    def stream_events(self, job_id: str, after: int | None = None) -> EventStream:
        """The job's events as they happen (Server-Sent Events), from after event id `after`,
        until the job is finished; reconnects with Last-Event-ID when the stream drops::

            with client.stream_events(job_id) as events:
                for event in events:
                    print(event["kind"], event["stage"], event["progress"])
            events.job  # the finished job (None if the job was deleted meanwhile)
        """
        return EventStream(self, Follow(job_id, after, self.retry))

    def wait(
        self, job_id: str, on_update: OnUpdate | None = None, poll_interval: float = 2.0,
        timeout: float | None = None,
    ) -> Job:  # fmt: skip
        """Poll until the job is succeeded, failed or canceled; on_update sees each change."""
        deadline = None if timeout is None else time.monotonic() + timeout
        previous: Job | None = None
        while True:
            job = self.get_job(job_id)
            if on_update is not None and base.job_changed(previous, job):
                on_update(job)
            previous = job
            if base.is_terminal(job):
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise ScalpelTimeoutError(f"job {job_id} still {job.get('status')}")
            time.sleep(poll_interval)

    # -- artifacts -------------------------------------------------------------------------

    def list_artifacts(self, job_id: str) -> list[Artifact]:
        items = base.page_items(self._get(base.job_path(job_id, "artifacts")))[0]
        return base.typed_items(items, Artifact)

    def download_artifact(
        self, job_id: str, name: str, dest: str | Path = ".", *,
        on_progress: OnProgress | None = None,
    ) -> Path:  # fmt: skip
        """Download the artifact named by id, kind or filename into dest (a file, or a folder
        for the artifact's own file name); resumes a `.part` left by an earlier try."""
        art = base.find_artifact(self.list_artifacts(job_id), name)
        return self.download(art, dest, on_progress=on_progress)

    def download(
        self, artifact: Artifact, dest: str | Path = ".", *, on_progress: OnProgress | None = None
    ) -> Path:
        """Download an artifact from a listing entry (see download_artifact)."""
        state = PartialDownload(
            target_path(dest, str(artifact["filename"])), artifact.get("sha256"),
            artifact.get("size_bytes"),
        )  # fmt: skip
        if state.already_done():
            return state.dest
        url, retry, fresh_retry = str(artifact["download_url"]), 0, True
        while True:
            try:
                with self._http.stream("GET", url, headers=state.request_headers()) as r:
                    if r.status_code == 416:
                        if state.complete_on_disk():
                            return state.finish()
                        state.reset()
                        continue
                    if r.status_code >= 400:
                        if retry + 1 < self.retry.attempts and retry_status(r, True):
                            retry += 1
                            time.sleep(self.retry.delay(retry, r))
                            continue
                        r.read()
                        raise ScalpelAPIError.from_response(r)
                    state.begin(r)
                    for chunk in r.iter_bytes():
                        state.write(chunk)
                        if on_progress is not None:
                            on_progress(state.offset, state.size)
                    return state.finish()
            except httpx.TransportError as exc:
                state.close()
                retry += 1
                if retry >= self.retry.attempts:
                    raise base.connection_error("GET", self._http, url, exc) from exc
                time.sleep(self.retry.delay(retry))
            except DigestMismatchError:
                if not (state.resumed and fresh_retry):
                    raise
                fresh_retry = False  # a stale part: once more, from the start
            finally:
                state.close()

    # -- uploads ---------------------------------------------------------------------------

    def upload_model(
        self, path: str | Path, name: str | None = None, idempotency_key: str | None = None
    ) -> UploadedModel:
        """POST /v1/models: an HF model folder archived as .zip or .tar.gz."""
        upload = base.model_upload(path, name)
        return base.typed(self._upload("/v1/models", upload, idempotency_key), UploadedModel)

    def upload_dataset(
        self, path: str | Path, name: str | None = None, *,
        text_columns: str | list[str] | None = None, label_column: str | None = None,
        format: str | None = None, idempotency_key: str | None = None, task: str | None = None,
        tag_column: str | None = None, tag_scheme: str | None = None,
    ) -> UploadedDataset:  # fmt: skip
        """POST /v1/datasets: a .csv, .tsv or .jsonl table, or for `task`
        token_classification a CoNLL or tagged JSONL file, for question_answering a SQuAD
        JSON or JSONL file."""
        upload = base.dataset_upload(path, name, text_columns, label_column, format, task,
                                     tag_column, tag_scheme)  # fmt: skip
        return base.typed(self._upload("/v1/datasets", upload, idempotency_key), UploadedDataset)

    def _upload(self, path: str, upload: Upload, idempotency_key: str | None) -> JSON:
        key = idempotency_key or base.new_idempotency_key()
        response = self._request("POST", path, idempotent=True, upload=upload,
                                 headers={"Idempotency-Key": key})  # fmt: skip
        return base.decode_object(response)

    def get_model(self, model_id: str) -> UploadedModel:
        return base.typed(self._get(base.upload_path("models", model_id)), UploadedModel)

    def get_dataset(self, dataset_id: str) -> UploadedDataset:
        return base.typed(self._get(base.upload_path("datasets", dataset_id)), UploadedDataset)

    def delete_model(self, model_id: str) -> None:
        """DELETE /v1/models/{id} (a 409 `model_in_use` while a queued or running job uses it;
        finished jobs keep their records)."""
        path = base.upload_path("models", model_id)
        base.decode(self._request("DELETE", path, idempotent=False))

    def delete_dataset(self, dataset_id: str) -> None:
        """DELETE /v1/datasets/{id} (a 409 `dataset_in_use` while a queued or running job
        uses it)."""
        path = base.upload_path("datasets", dataset_id)
        base.decode(self._request("DELETE", path, idempotent=False))

    def list_models(self) -> Iterator[UploadedModel]:
        for item in self._pages("/v1/models", {}):
            yield base.typed(item, UploadedModel)

    def list_datasets(self) -> Iterator[UploadedDataset]:
        for item in self._pages("/v1/datasets", {}):
            yield base.typed(item, UploadedDataset)

    # -- recipes ---------------------------------------------------------------------------

    def list_recipes(self) -> list[Recipe]:
        """The built-in recipes, each at its latest version (name them in a spec's `recipe`)."""
        return base.typed_items(base.page_items(self._get("/v1/recipes"))[0], Recipe)

    def get_recipe(self, ref: str) -> Recipe:
        """`name` (its latest version) or `name@version`."""
        return base.typed(self._get(f"/v1/recipes/{quote(ref, safe='')}"), Recipe)


class EventStream:
    """An iterator over one job's events as they happen; also a context manager that closes
    the connection. Once the iteration ends, `job` is the finished job."""

    def __init__(self, client: ScalpelClient, follow: Follow) -> None:
        self._http = client._http
        self._follow = follow
        self._events = self._run()

    @property
    def job(self) -> Job | None:
        return self._follow.job

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> JobEvent:
        return next(self._events)

    def close(self) -> None:
        self._events.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> Generator[JobEvent, None, None]:
        f = self._follow
        while not f.done:
            try:
                with self._http.stream("GET", f.path, headers=f.headers()) as r:
                    if r.status_code >= 400:
                        r.read()
                        f.refused(r)
                    else:
                        f.opened(r)
                        for line in r.iter_lines():
                            event = f.line(line)
                            if event is not None:
                                yield event
                            if f.done:
                                return
                        f.closed()
            except httpx.TransportError as exc:
                f.broke("GET", base.full_url(self._http, f.path), exc)
            time.sleep(f.delay())
