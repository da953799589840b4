"""`scalpel jobs`, `watch`, `show` and `events` on a running job with training telemetry:
names instead of ids and the time left, against a real API server (the job is moved to
running and its telemetry event written in the server's database, as a worker would)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.cli.context import Exit
from app.db.base import utcnow
from app.db.models import JobEvent
from app.db.session import make_engine
from tests.app.cli.conftest import Cli
from tests.client.server import Server, tiny_dataset_csv, tiny_model_zip

TELEMETRY = {"step": 100, "total_steps": 400, "loss": 0.4321, "loss_steps": 50,
             "learning_rate": 4e-05, "steps_per_s": 5.0, "examples_per_s": 80.0,
             "stage_steps_per_s": 5.0, "elapsed_s": 20.0, "remaining_steps": 300}  # fmt: skip


def as_json(cli: Cli, *args: str) -> Any:
    r = cli("--json", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def train_a_while(server: Server, job_id: str) -> None:
    """The job running in `recover` for 30 s, its telemetry written 10 s ago: 300 steps left
    at 5 steps/s, so its training ends in about 50 s."""
    server.finish_job(job_id, "running", stage="recover", progress=0.4,
                      started_at=utcnow() - timedelta(seconds=30))  # fmt: skip
    engine = make_engine(server.db_url)
    try:
        with Session(engine) as session:
            session.add(JobEvent(job_id=uuid.UUID(job_id), kind="telemetry", stage="recover",
                                 progress=0.4, data=TELEMETRY,
                                 created_at=utcnow() - timedelta(seconds=10)))  # fmt: skip
            session.commit()
    finally:
        engine.dispose()


def test_a_training_job_by_name_with_its_time_left(
    cli: Cli, server: Server, tmp_path: Path
) -> None:
    model = as_json(cli, "models", "upload", str(tiny_model_zip(tmp_path / "m.zip")),
                    "--name", "tiny-bert")  # fmt: skip
    data = as_json(cli, "datasets", "upload", str(tiny_dataset_csv(tmp_path / "d.csv")),
                   "--name", "reviews", "--text-columns", "text", "--label-column",
                   "label")  # fmt: skip
    job = as_json(cli, "submit", "--model", model["id"], "--dataset", data["id"],
                  "--set", "name=nightly-80")  # fmt: skip
    train_a_while(server, job["id"])
    assert 40 <= as_json(cli, "show", job["id"])["eta_seconds"] <= 50

    r = cli("jobs", "--limit", "500")
    assert r.exit_code == 0, r.output
    row = next(line for line in r.stdout.splitlines() if line.startswith("nightly-80 "))
    assert job["id"][:8] not in row and model["id"][:8] not in row
    assert re.search(r" running +recover +40% +(4\d|50)s +tiny-bert +reviews ", row), row

    r = cli("watch", job["id"], "--interval", "0.1", "--timeout", "0.5")
    assert r.exit_code == Exit.TIMEOUT and re.search(r"eta (4\d|50)s", r.stderr), r.stderr
    r = cli("show", job["id"])
    assert re.search(r"\n  eta (4\d|50)s \(the training left, until ", r.stdout), r.stdout

    r = cli("events", job["id"])
    line = r.stdout.splitlines()[-1]
    assert line.endswith(
        "telemetry  recover  40%  step 100/400  loss 0.4321  lr 4e-05  "
        "5 steps/s  80 examples/s  elapsed 20s  300 steps left"
    ), line
    sent = [json.loads(x) for x in cli("--json", "events", job["id"]).stdout.splitlines()]
    assert [e["data"] for e in sent if e["kind"] == "telemetry"] == [TELEMETRY]  # as sent
