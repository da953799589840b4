"""AsyncScalpelClient: the asyncio client (httpx.AsyncClient), method for method the same as
ScalpelClient."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
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


class AsyncScalpelClient(ClientBase):
    """async with AsyncScalpelClient() as c: job = await c.submit_job(spec)."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        config_path: str | Path | None = None,
        retry: RetryPolicy | None = None,
        config: ClientConfig | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        """url and api_key: else $SCALPEL_URL / $SCALPEL_API_KEY, else the config file (see
        scalpel_client.config). http: a client of your own (its base URL must be the API's)."""
        super().__init__(
            url, api_key, timeout=timeout, config_path=config_path, retry=retry, config=config
        )
        # A given http client keeps its base URL and any headers it already sets.
        self._http = http or httpx.AsyncClient(
            base_url=self.config.url, timeout=self.config.timeout
        )
        for name, value in self._headers().items():
            self._http.headers.setdefault(name, value)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncScalpelClient:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- transport -------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, *, idempotent: bool, upload: Upload | None = None,
        **kwargs: Any,
    ) -> httpx.Response:  # fmt: skip
        retry = 0
        while True:
            try:
                if upload is None:
                    response = await self._http.request(method, path, **kwargs)
                else:
                    with upload.path.open("rb") as f:
                        files, data = upload.files(f), upload.fields
                        response = await self._http.request(method, path, files=files,
                                                            data=data, **kwargs)  # fmt: skip
            except httpx.TransportError as exc:
                retry += 1
                if retry >= self.retry.attempts or not retry_error(exc, idempotent):
                    raise base.connection_error(method, self._http, path, exc) from exc
                await asyncio.sleep(self.retry.delay(retry))
                continue
            if retry + 1 < self.retry.attempts and retry_status(response, idempotent):
                retry += 1
                await asyncio.sleep(self.retry.delay(retry, response))
                continue
            return response

    async def _get(self, path: str, **params: Any) -> JSON:
        clean = {k: v for k, v in params.items() if v is not None}
        response = await self._request("GET", path, idempotent=True, params=clean)
        return base.decode_object(response)

    async def _pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[JSON]:
        token: str | None = None
        while True:
            page = await self._get(path, **base.page_params(params, token))
            items, token = base.page_items(page)
            for item in items:
                yield item
            if not token:
                return

    # -- jobs ------------------------------------------------------------------------------

    @overload
    async def submit_job(
        self, spec: Mapping[str, Any], idempotency_key: str | None = None, *,
        name: str | None = None, labels: Mapping[str, str] | None = None,
        dry_run: Literal[False] = False,
    ) -> Job: ...  # fmt: skip
    @overload
    async def submit_job(
        self, spec: Mapping[str, Any], idempotency_key: str | None = None, *,
        name: str | None = None, labels: Mapping[str, str] | None = None,
        dry_run: Literal[True],
    ) -> JobDryRun: ...  # fmt: skip
    @overload
    async def submit_job(
        self, spec: Mapping[str, Any], idempotency_key: str | None = None, *,
        name: str | None = None, labels: Mapping[str, str] | None = None, dry_run: bool,
    ) -> Job | JobDryRun: ...  # fmt: skip
    async def submit_job(
        self, spec: Mapping[str, Any], idempotency_key: str | None = None, *,
        name: str | None = None, labels: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> Job | JobDryRun:  # fmt: skip
        body = base.submission(spec, name, labels)
        if dry_run:
            response = await self._request("POST", "/v1/jobs", idempotent=True, json=body,
                                           params={"dry_run": "true"})  # fmt: skip
            return base.decode_typed(response, JobDryRun)
        key = idempotency_key or base.new_idempotency_key()
        response = await self._request("POST", "/v1/jobs", idempotent=True, json=body,
                                       headers={"Idempotency-Key": key})  # fmt: skip
        return base.decode_typed(response, Job)

    async def get_job(self, job_id: str) -> Job:
        return base.typed(await self._get(base.job_path(job_id)), Job)

    async def list_jobs(
        self, status: JobStatus | Sequence[JobStatus] | None = None,
        page_size: int | None = None, *, model: str | None = None, dataset: str | None = None,
        recipe: str | None = None, labels: Mapping[str, str] | None = None,
        created_after: str | datetime | None = None, created_before: str | datetime | None = None,
    ) -> AsyncIterator[Job]:  # fmt: skip
        query = base.job_filters(status, model, dataset, recipe, labels, created_after,
                                 created_before)  # fmt: skip
        async for item in self._pages("/v1/jobs", {**query, "limit": page_size}):
            yield base.typed(item, Job)

    async def cancel_job(self, job_id: str) -> Job:
        response = await self._request("POST", base.job_path(job_id, "cancel"), idempotent=False)
        return base.decode_typed(response, Job)

    async def delete_job(self, job_id: str) -> None:
        base.decode(await self._request("DELETE", base.job_path(job_id), idempotent=False))

    async def job_events(
        self, job_id: str, after: int | None = None, limit: int | None = None
    ) -> EventPage:
        page = await self._get(base.job_path(job_id, "events"), after=after, limit=limit)
        items, _ = base.page_items(page)
        return {"items": base.typed_items(items, JobEvent), "next_after": page.get("next_after")}

    async def iter_events(self, job_id: str, after: int | None = None) -> AsyncIterator[JobEvent]:
        while True:
            page = await self.job_events(job_id, after=after)
            for event in page["items"]:
                yield event
            if page["next_after"] is None:
                return
            after = page["next_after"]

    def stream_events(self, job_id: str, after: int | None = None) -> AsyncEventStream:
        """async with client.stream_events(job_id) as events: async for event in events: ..."""
        return AsyncEventStream(self, Follow(job_id, after, self.retry))

    async def wait(
        self, job_id: str, on_update: OnUpdate | None = None, poll_interval: float = 2.0,
        timeout: float | None = None,
    ) -> Job:  # fmt: skip
        deadline = None if timeout is None else time.monotonic() + timeout
        previous: Job | None = None
        while True:
            job = await self.get_job(job_id)
            if on_update is not None and base.job_changed(previous, job):
                on_update(job)
            previous = job
            if base.is_terminal(job):
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise ScalpelTimeoutError(f"job {job_id} still {job.get('status')}")
            await asyncio.sleep(poll_interval)

    # -- artifacts -------------------------------------------------------------------------

    async def list_artifacts(self, job_id: str) -> list[Artifact]:
        items = base.page_items(await self._get(base.job_path(job_id, "artifacts")))[0]
        return base.typed_items(items, Artifact)

    async def download_artifact(
        self, job_id: str, name: str, dest: str | Path = ".", *,
        on_progress: OnProgress | None = None,
    ) -> Path:  # fmt: skip
        art = base.find_artifact(await self.list_artifacts(job_id), name)
        return await self.download(art, dest, on_progress=on_progress)

    async def download(
        self, artifact: Artifact, dest: str | Path = ".", *, on_progress: OnProgress | None = None
    ) -> Path:
        state = PartialDownload(
            target_path(dest, str(artifact["filename"])), artifact.get("sha256"),
            artifact.get("size_bytes"),
        )  # fmt: skip
        if state.already_done():
            return state.dest
        url, retry, fresh_retry = str(artifact["download_url"]), 0, True
        while True:
            try:
                async with self._http.stream("GET", url, headers=state.request_headers()) as r:
                    if r.status_code == 416:
                        if state.complete_on_disk():
                            return state.finish()
                        state.reset()
                        continue
                    if r.status_code >= 400:
                        if retry + 1 < self.retry.attempts and retry_status(r, True):
                            retry += 1
                            await asyncio.sleep(self.retry.delay(retry, r))
                            continue
                        await r.aread()
                        raise ScalpelAPIError.from_response(r)
                    state.begin(r)
                    async for chunk in r.aiter_bytes():
                        state.write(chunk)
                        if on_progress is not None:
                            on_progress(state.offset, state.size)
                    return state.finish()
            except httpx.TransportError as exc:
                state.close()
                retry += 1
                if retry >= self.retry.attempts:
                    raise base.connection_error("GET", self._http, url, exc) from exc
                await asyncio.sleep(self.retry.delay(retry))
            except DigestMismatchError:
                if not (state.resumed and fresh_retry):
                    raise
                fresh_retry = False
            finally:
                state.close()

    # -- uploads ---------------------------------------------------------------------------

    async def upload_model(
        self, path: str | Path, name: str | None = None, idempotency_key: str | None = None
    ) -> UploadedModel:
        item = await self._upload("/v1/models", base.model_upload(path, name), idempotency_key)
        return base.typed(item, UploadedModel)

    async def upload_dataset(
        self, path: str | Path, name: str | None = None, *,
        text_columns: str | list[str] | None = None, label_column: str | None = None,
        format: str | None = None, idempotency_key: str | None = None, task: str | None = None,
        tag_column: str | None = None, tag_scheme: str | None = None,
    ) -> UploadedDataset:  # fmt: skip
        upload = base.dataset_upload(path, name, text_columns, label_column, format, task,
                                     tag_column, tag_scheme)  # fmt: skip
        item = await self._upload("/v1/datasets", upload, idempotency_key)
        return base.typed(item, UploadedDataset)

    async def _upload(self, path: str, upload: Upload, idempotency_key: str | None) -> JSON:
        key = idempotency_key or base.new_idempotency_key()
        response = await self._request("POST", path, idempotent=True, upload=upload,
                                       headers={"Idempotency-Key": key})  # fmt: skip
        return base.decode_object(response)

    async def get_model(self, model_id: str) -> UploadedModel:
        return base.typed(await self._get(base.upload_path("models", model_id)), UploadedModel)

    async def get_dataset(self, dataset_id: str) -> UploadedDataset:
        body = await self._get(base.upload_path("datasets", dataset_id))
        return base.typed(body, UploadedDataset)

    async def delete_model(self, model_id: str) -> None:
        path = base.upload_path("models", model_id)
        base.decode(await self._request("DELETE", path, idempotent=False))

    async def delete_dataset(self, dataset_id: str) -> None:
        path = base.upload_path("datasets", dataset_id)
        base.decode(await self._request("DELETE", path, idempotent=False))

    async def list_models(self) -> AsyncIterator[UploadedModel]:
        async for item in self._pages("/v1/models", {}):
            yield base.typed(item, UploadedModel)

    async def list_datasets(self) -> AsyncIterator[UploadedDataset]:
        async for item in self._pages("/v1/datasets", {}):
            yield base.typed(item, UploadedDataset)

    # -- recipes ---------------------------------------------------------------------------

    async def list_recipes(self) -> list[Recipe]:
        return base.typed_items(base.page_items(await self._get("/v1/recipes"))[0], Recipe)

    async def get_recipe(self, ref: str) -> Recipe:
        return base.typed(await self._get(f"/v1/recipes/{quote(ref, safe='')}"), Recipe)


class AsyncEventStream:
    """The async EventStream: `async for`, and `async with` to close the connection."""

    def __init__(self, client: AsyncScalpelClient, follow: Follow) -> None:
        self._http = client._http
        self._follow = follow
        self._events = self._run()

    @property
    def job(self) -> Job | None:
        return self._follow.job

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> JobEvent:
        return await anext(self._events)

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[JobEvent, None]:
        f = self._follow
        while not f.done:
            try:
                async with self._http.stream("GET", f.path, headers=f.headers()) as r:
                    if r.status_code >= 400:
                        await r.aread()
                        f.refused(r)
                    else:
                        f.opened(r)
                        async for line in r.aiter_lines():
                            event = f.line(line)
                            if event is not None:
                                yield event
                            if f.done:
                                return
                        f.closed()
            except httpx.TransportError as exc:
                f.broke("GET", base.full_url(self._http, f.path), exc)
            await asyncio.sleep(f.delay())
