"""ScalpelClient: the blocking client (httpx.Client)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from app.client import base
from app.client.base import JSON, ClientBase, OnProgress, OnUpdate, Upload
from app.client.config import ClientConfig
from app.client.download import PartialDownload, target_path
from app.client.errors import (
    DigestMismatchError,
    ScalpelAPIError,
    ScalpelConnectionError,
    ScalpelTimeoutError,
)
from app.client.retry import RetryPolicy, retry_error, retry_status


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
        app.client.config). http: a client of your own (its base URL must be the API's)."""
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
                    raise ScalpelConnectionError(f"{method} {path}: {exc!r}") from exc
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

    def submit_job(self, spec: JSON, idempotency_key: str | None = None) -> JSON:
        """POST /v1/jobs. A key is always sent (a new one unless given), so retries are safe
        and a repeat with the same key answers the first job."""
        key = idempotency_key or base.new_idempotency_key()
        response = self._request("POST", "/v1/jobs", idempotent=True, json=spec,
                                 headers={"Idempotency-Key": key})  # fmt: skip
        return base.decode_object(response)

    def get_job(self, job_id: str) -> JSON:
        return self._get(base.job_path(job_id))

    def list_jobs(self, status: str | None = None, page_size: int | None = None) -> Iterator[JSON]:
        """Every job (newest first), following the cursor across pages."""
        return self._pages("/v1/jobs", {"status": status, "limit": page_size})

    def cancel_job(self, job_id: str) -> JSON:
        response = self._request("POST", base.job_path(job_id, "cancel"), idempotent=False)
        return base.decode_object(response)

    def job_events(self, job_id: str, after: int | None = None) -> JSON:
        return self._get(base.job_path(job_id, "events"), after=after)

    def wait(
        self, job_id: str, on_update: OnUpdate | None = None, poll_interval: float = 2.0,
        timeout: float | None = None,
    ) -> JSON:  # fmt: skip
        """Poll until the job is succeeded, failed or canceled; on_update sees each change."""
        deadline = None if timeout is None else time.monotonic() + timeout
        previous: JSON | None = None
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

    def list_artifacts(self, job_id: str) -> list[JSON]:
        return base.page_items(self._get(base.job_path(job_id, "artifacts")))[0]

    def download_artifact(
        self, job_id: str, name: str, dest: str | Path = ".", *,
        on_progress: OnProgress | None = None,
    ) -> Path:  # fmt: skip
        """Download the artifact named by id, kind or filename into dest (a file, or a folder
        for the artifact's own file name); resumes a `.part` left by an earlier try."""
        art = base.find_artifact(self.list_artifacts(job_id), name)
        return self.download(art, dest, on_progress=on_progress)

    def download(
        self, artifact: JSON, dest: str | Path = ".", *, on_progress: OnProgress | None = None
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
                    raise ScalpelConnectionError(f"GET {url}: {exc!r}") from exc
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
    ) -> JSON:
        """POST /v1/models: an HF model folder archived as .zip or .tar.gz."""
        return self._upload("/v1/models", base.model_upload(path, name), idempotency_key)

    def upload_dataset(
        self, path: str | Path, name: str | None = None, *,
        text_columns: str | list[str] | None = None, label_column: str | None = None,
        format: str | None = None, idempotency_key: str | None = None, task: str | None = None,
        tag_column: str | None = None, tag_scheme: str | None = None,
    ) -> JSON:  # fmt: skip
        """POST /v1/datasets: a .csv, .tsv or .jsonl table, or for `task`
        token_classification a CoNLL or tagged JSONL file, for question_answering a SQuAD
        JSON or JSONL file."""
        upload = base.dataset_upload(path, name, text_columns, label_column, format, task,
                                     tag_column, tag_scheme)  # fmt: skip
        return self._upload("/v1/datasets", upload, idempotency_key)

    def _upload(self, path: str, upload: Upload, idempotency_key: str | None) -> JSON:
        key = idempotency_key or base.new_idempotency_key()
        response = self._request("POST", path, idempotent=True, upload=upload,
                                 headers={"Idempotency-Key": key})  # fmt: skip
        return base.decode_object(response)

    def list_models(self) -> Iterator[JSON]:
        return self._pages("/v1/models", {})

    def list_datasets(self) -> Iterator[JSON]:
        return self._pages("/v1/datasets", {})
