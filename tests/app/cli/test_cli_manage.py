"""`scalpel` for managing jobs and uploads: submit with a name, labels or --dry-run, the
filters of `jobs`, `delete` and `models/datasets delete`, downloads past expired artifacts,
and the names `jobs` shows for deleted uploads; against a real API server."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cli import names
from app.cli.context import Exit
from scalpel_client import ScalpelClient
from tests.app.cli.conftest import Cli
from tests.client.server import Server, tiny_dataset_csv, tiny_model_zip

BASE = ("--model", "minilm-l6", "--dataset", "tweets")


def tag() -> str:
    return uuid.uuid4().hex[:12]


def as_json(cli: Cli, *args: str) -> Any:
    r = cli("--json", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_download_skips_expired_artifacts_and_refuses_a_named_one(
    cli: Cli, server: Server, tmp_path: Path
) -> None:
    job = as_json(cli, "submit", *BASE)
    model = os.urandom(50_000)
    server.add_artifact(job["id"], model)
    report = server.add_artifact(job["id"], b"{}", kind="report", filename="report.json")
    server.expire_artifact(report["id"])

    r = cli("download", job["id"], "--out", str(tmp_path / "all"))
    assert r.exit_code == 0, r.output
    assert "note: skipped artifact report (report.json) expired at " in r.stderr
    assert [p.name for p in (tmp_path / "all").iterdir()] == ["model.tar.gz"]
    assert (tmp_path / "all" / "model.tar.gz").read_bytes() == model
    got = as_json(cli, "download", job["id"], "--out", str(tmp_path / "js"))
    assert [d["kind"] for d in got] == ["model"]

    r = cli("download", job["id"], "--artifact", "model", "--artifact", "report",
            "--out", str(tmp_path / "named"))  # fmt: skip
    assert r.exit_code == Exit.ERROR
    assert "artifact report (report.json) expired at " in r.stderr
    assert r.stderr.rstrip().endswith("nothing downloaded")
    assert list((tmp_path / "named").iterdir()) == []  # not even the model

    only_expired = as_json(cli, "submit", *BASE)
    art = server.add_artifact(only_expired["id"], b"x")
    server.expire_artifact(art["id"])
    r = cli("download", only_expired["id"], "--out", str(tmp_path / "none"))
    assert r.exit_code == 0 and r.stdout == "nothing to download: every artifact has expired\n"


def test_submit_with_a_name_and_labels(cli: Cli, tmp_path: Path) -> None:
    run = tag()
    job = as_json(cli, "submit", *BASE, "--name", "nightly", "--label", "team=search",
                  "--label", f"run={run}", "--label", "expr=a=b")  # fmt: skip
    assert job["name"] == "nightly"
    assert job["labels"] == {"team": "search", "run": run, "expr": "a=b"}
    spec = tmp_path / "job.yaml"
    spec.write_text("model: minilm-l6\ndataset: tweets\nname: from-file\n"
                    "labels:\n  team: core\n  tier: gold\n")  # fmt: skip
    job = as_json(cli, "submit", "--spec", str(spec), "--label", "team=search")
    assert (job["name"], job["labels"]) == ("from-file", {"team": "search", "tier": "gold"})
    for bad, says in (("team", "KEY=VALUE"), ("=x", "KEY=VALUE")):
        r = cli("submit", *BASE, "--label", bad)
        assert r.exit_code == Exit.USAGE and says in r.stderr
    r = cli("submit", *BASE, "--label", "a=1", "--label", "a=2")
    assert r.exit_code == Exit.USAGE and "given twice" in r.stderr
    r = cli("submit", *BASE, "--label", "Not A Key=1")  # the API's own check
    assert r.exit_code == Exit.ERROR and "field: labels" in r.stderr


def test_dry_run_shows_the_spec_and_estimates_and_submits_nothing(cli: Cli) -> None:
    run = tag()
    args = ("submit", *BASE, "--recipe", "obert-80", "--name", "try", "--label", f"run={run}")
    r = cli(*args, "--dry-run")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "dry run: the submission passed its checks; nothing was submitted"
    assert lines[1].startswith("  model minilm-l6  data set tweets  pruning obert 0.8  recipe ")
    assert lines[2] == f"  name try  labels run={run}"
    assert lines[3].startswith("  memory: peak ") and "budget " in lines[3]
    assert lines[4].startswith("  time: about ") and ", limit " in lines[4]
    assert '"model": "minilm-l6"' in r.stdout
    dry = as_json(cli, *args, "--dry-run")
    assert dry["dry_run"] is True and dry["spec"]["recipe"].startswith("obert-80@")
    assert dry["memory_estimate"]["peak_bytes"] > 0
    assert as_json(cli, "jobs", "--label", f"run={run}") == []  # nothing was submitted
    for extra in ("--wait", "--quiet"):
        r = cli(*args, "--dry-run", extra)
        assert r.exit_code == Exit.USAGE and "--dry-run submits no job" in r.stderr
    r = cli("submit", *BASE, "--sparsity", "2", "--dry-run")
    assert r.exit_code == Exit.ERROR and "field: pruning.sparsity" in r.stderr


def test_jobs_filters(cli: Cli, tmp_path: Path) -> None:
    run = tag()
    model = as_json(cli, "models", "upload", str(tiny_model_zip(tmp_path / "m.zip")))
    data = as_json(cli, "datasets", "upload", str(tiny_dataset_csv(tmp_path / "d.csv")))
    mine = ("--label", f"run={run}")
    on_upload = as_json(cli, "submit", "--model", model["id"], "--dataset", data["id"], *mine)
    recipe = as_json(cli, "submit", *BASE, "--recipe", "obert-80", *mine, "--label", "x=1")
    plain = as_json(cli, "submit", *BASE, *mine)
    assert cli("cancel", plain["id"]).exit_code == 0

    def ids(*filters: str) -> list[str]:
        return [j["id"] for j in as_json(cli, "jobs", *mine, *filters)]

    assert ids() == [plain["id"], recipe["id"], on_upload["id"]]
    assert ids("--model", model["id"]) == ids("--dataset", data["id"]) == [on_upload["id"]]
    assert ids("--model", "minilm-l6", "--dataset", "tweets") == [plain["id"], recipe["id"]]
    assert ids("--recipe", "obert-80") == ids("--label", "x=1") == [recipe["id"]]
    assert ids("--status", "canceled") == [plain["id"]]
    assert ids("--status", "canceled", "--status", "queued") == ids()
    assert ids("--created-after", recipe["created_at"]) == [plain["id"], recipe["id"]]
    assert ids("--created-before", recipe["created_at"]) == [on_upload["id"]]
    r = cli("jobs", "--created-after", "last tuesday")
    assert r.exit_code == Exit.ERROR and "field: created_after" in r.stderr
    r = cli("jobs", "--status", "done")
    assert r.exit_code == Exit.USAGE
    r = cli("jobs", *mine, "--status", "canceled")  # the table, filtered
    assert r.exit_code == 0 and plain["id"][:8] in r.stdout and recipe["id"][:8] not in r.stdout


def test_delete_a_job_and_uploads(cli: Cli, tmp_path: Path) -> None:
    model = as_json(cli, "models", "upload", str(tiny_model_zip(tmp_path / "m.zip")))
    data = as_json(cli, "datasets", "upload", str(tiny_dataset_csv(tmp_path / "d.csv")))
    job = as_json(cli, "submit", "--model", model["id"], "--dataset", data["id"])
    r = cli("delete", job["id"])
    assert r.exit_code == Exit.ERROR and "job_active (409)" in r.stderr
    r = cli("models", "delete", model["id"])
    assert r.exit_code == Exit.ERROR and "model_in_use (409)" in r.stderr
    assert cli("cancel", job["id"]).exit_code == 0
    r = cli("delete", job["id"])
    assert r.exit_code == 0 and r.stdout == f"deleted job {job['id']}\n"
    r = cli("show", job["id"])
    assert r.exit_code == Exit.ERROR and "job_not_found (404)" in r.stderr
    assert as_json(cli, "models", "delete", model["id"]) == {
        "id": model["id"], "kind": "model", "deleted": True,
    }  # fmt: skip
    r = cli("datasets", "delete", data["id"])
    assert r.exit_code == 0 and r.stdout == f"deleted data set {data['id']}\n"
    r = cli("datasets", "delete", data["id"])
    assert r.exit_code == Exit.ERROR and "(404)" in r.stderr
    assert model["id"] not in cli("models", "list").stdout


def test_jobs_name_a_deleted_upload_by_its_short_id(cli: Cli, tmp_path: Path) -> None:
    run = tag()
    model = as_json(cli, "models", "upload", str(tiny_model_zip(tmp_path / "m.zip")),
                    "--name", "gone-bert")  # fmt: skip
    data = as_json(cli, "datasets", "upload", str(tiny_dataset_csv(tmp_path / "d.csv")),
                   "--name", "kept-reviews")  # fmt: skip
    job = as_json(cli, "submit", "--model", model["id"], "--dataset", data["id"],
                  "--name", f"j-{run}", "--label", f"run={run}")  # fmt: skip
    assert cli("cancel", job["id"]).exit_code == 0
    assert cli("models", "delete", model["id"]).exit_code == 0
    r = cli("jobs", "--label", f"run={run}")
    assert r.exit_code == 0, r.output
    row = next(line for line in r.stdout.splitlines() if line.startswith(f"j-{run} "))
    assert f" {model['id'][:8]} " in row and model["id"] not in row and "gone-bert" not in row
    assert " kept-reviews " in row


def _recording(server: Server, seen: list[httpx.Request]) -> ScalpelClient:
    http = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"},
        event_hooks={"request": [seen.append]},
    )  # fmt: skip
    return ScalpelClient(server.url, server.api_key, http=http)


def test_upload_names_reads_each_id_once_capped_never_the_listings(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[httpx.Request] = []
    with _recording(server, seen) as client:
        kept = client.upload_model(tiny_model_zip(tmp_path / "m.zip"), name="kept-m")
        gone = client.upload_model(tiny_model_zip(tmp_path / "g.zip"), name="gone-m")
        data = client.upload_dataset(tiny_dataset_csv(tmp_path / "d.csv"), name="d")
        client.delete_model(gone["id"])
        jobs = [{"spec": {"model": m, "dataset": {"name": d}}}
                for m, d in ((kept["id"], data["id"]), (gone["id"], data["id"]),
                             ("minilm-l6", "tweets"), (kept["id"], "tweets"))]  # fmt: skip
        seen.clear()
        assert names.upload_names(client, jobs) == {kept["id"]: "kept-m", data["id"]: "d"}
        assert [r.url.path for r in seen] == [
            f"/v1/models/{kept['id']}",
            f"/v1/datasets/{data['id']}",
            f"/v1/models/{gone['id']}",
        ]  # each id once, in the jobs' order; no listing paged through
        seen.clear()
        monkeypatch.setattr(names, "MAX_LOOKUPS", 1)
        assert names.upload_names(client, jobs) == {kept["id"]: "kept-m"}
        assert len(seen) == 1
