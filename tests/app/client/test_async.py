"""AsyncScalpelClient does what ScalpelClient does, against the same real server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from app.client import AsyncScalpelClient, ScalpelAPIError
from tests.app.client.server import Server, spec, tiny_dataset_csv, tiny_model_zip


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


def test_async_client_parity(server: Server, tmp_path: Path) -> None:
    asyncio.run(_scenario(server, tmp_path))
