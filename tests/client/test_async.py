"""AsyncScalpelClient does what ScalpelClient does, against the same real server."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from scalpel_client import AsyncScalpelClient, ScalpelAPIError
from tests.client.server import Server, spec, tiny_dataset_csv, tiny_model_zip


async def _scenario(server: Server, tmp_path: Path) -> None:
    async with AsyncScalpelClient(server.url, server.api_key) as client:
        model = await client.upload_model(tiny_model_zip(tmp_path / "m.zip"), name="am")
        dataset = await client.upload_dataset(tiny_dataset_csv(tmp_path / "d.csv"))
        assert model["id"] in [m["id"] async for m in client.list_models()]
        assert dataset["id"] in [d["id"] async for d in client.list_datasets()]

        job = await client.submit_job(spec(), idempotency_key="async-1")
        assert (await client.submit_job(spec(), idempotency_key="async-1"))["id"] == job["id"]
        assert (await client.get_job(job["id"]))["status"] == "queued"
        others = [(await client.submit_job(spec()))["id"] for _ in range(2)]
        listed = [j["id"] async for j in client.list_jobs(page_size=1)]
        assert {job["id"], *others} <= set(listed)

        data = os.urandom(2_500_000)
        server.add_artifact(job["id"], data)
        out = tmp_path / "out"
        out.mkdir()
        (out / "model.tar.gz.part").write_bytes(data[:777])
        path = await client.download_artifact(job["id"], "model", out)
        assert path.read_bytes() == data and not (out / "model.tar.gz.part").exists()
        assert [a["kind"] for a in await client.list_artifacts(job["id"])] == ["model"]

        assert (await client.cancel_job(job["id"]))["status"] == "canceled"
        seen: list[str] = []
        done = await client.wait(job["id"], on_update=lambda j: seen.append(j["status"]))
        assert done["status"] == "canceled" and seen == ["canceled"]
        events = await client.job_events(job["id"])
        assert isinstance(events["items"], list)

        with pytest.raises(ScalpelAPIError) as err:
            await client.submit_job(spec(pruning={"method": "bogus"}))
        assert (err.value.code, err.value.field) == ("validation_error", "pruning.method")
        await _filters_deletes_and_dry_runs(client, model["id"], dataset["id"])


async def _filters_deletes_and_dry_runs(
    client: AsyncScalpelClient, model_id: str, dataset_id: str
) -> None:
    run = uuid.uuid4().hex[:12]
    dry = await client.submit_job(spec(), name="a", labels={"run": run}, dry_run=True)
    assert dry["dry_run"] is True and dry["labels"] == {"run": run}
    assert dry["time_estimate"] is not None
    on_upload = await client.submit_job(spec(model=model_id, dataset={"name": dataset_id}),
                                        name="b", labels={"run": run})  # fmt: skip
    plain = await client.submit_job(spec(), labels={"run": run})
    assert on_upload["name"] == "b"

    async def ids(**filters: Any) -> list[str]:
        return [j["id"] async for j in client.list_jobs(labels={"run": run}, **filters)]

    assert await ids() == [plain["id"], on_upload["id"]]  # not the dry run
    assert await ids(model=model_id) == await ids(dataset=dataset_id) == [on_upload["id"]]
    assert await ids(created_after=plain["created_at"]) == [plain["id"]]
    assert await ids(created_before=plain["created_at"], status=["queued"]) == [on_upload["id"]]
    assert await ids(recipe="obert-80") == []
    assert (await client.get_model(model_id))["id"] == model_id
    assert (await client.get_dataset(dataset_id))["id"] == dataset_id
    with pytest.raises(ScalpelAPIError) as err:
        await client.delete_dataset(dataset_id)
    assert err.value.code == "dataset_in_use"
    for job in (plain, on_upload):
        await client.cancel_job(job["id"])
        await client.delete_job(job["id"])
    assert await ids() == []
    await client.delete_model(model_id)
    await client.delete_dataset(dataset_id)
    with pytest.raises(ScalpelAPIError) as err:
        await client.get_model(model_id)
    assert err.value.status == 404


def test_async_client_parity(server: Server, tmp_path: Path) -> None:
    asyncio.run(_scenario(server, tmp_path))
