"""`scalpel` for scripts and people: --recipe and `recipes`, `events`, --quiet ids, and a
--help that shows flags as flags and lists the spec's choices; against a real API server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import get_args

import pytest
import typer

from app.cli.context import Exit
from app.cli.main import app
from app.schemas.job_spec import PruningSpec, QuantizationSpec
from tests.app.cli.conftest import Cli
from tests.client.server import Server, tiny_dataset_csv, tiny_model_zip

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n")
BASE = ("--model", "minilm-l6", "--dataset", "tweets")


def commands(group: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    for command in group.registered_commands:
        name = command.name or (command.callback.__name__ if command.callback else "")
        out.append((*prefix, name.replace("_", "-")))
    for sub in group.registered_groups:
        assert sub.typer_instance is not None and sub.name is not None
        out += commands(sub.typer_instance, (*prefix, sub.name))
    return out


def test_help_shows_flags_as_flags_and_every_spec_choice(cli: Cli) -> None:
    for path in commands(app):
        r = cli(*path, "--help")
        assert r.exit_code == 0, (path, r.output)
        assert "<bool>" not in r.stdout, path
    text = cli("submit", "--help").stdout
    for flag in ("--wait ", "-q, --quiet ", "--recipe NAME"):
        assert flag in text
    for field, model in (("method", QuantizationSpec), ("method", PruningSpec),
                         ("structure", PruningSpec)):  # fmt: skip
        choices = get_args(model.model_fields[field].annotation)
        assert f"<{'|'.join(choices)}>" in text, (model.__name__, field)
    assert "qat_int8" in text  # the choice the old hand-written help left out
    r = cli("submit", *BASE, "--quantization", "int4")
    assert r.exit_code == Exit.USAGE and "'int4' is not one of" in r.stderr
    assert "-f, --follow " in cli("events", "--help").stdout


def test_submit_from_a_recipe(cli: Cli) -> None:
    latest = json.loads(cli("--json", "recipes", "obert-80").stdout)
    r = cli("--json", "submit", *BASE, "--recipe", "obert-80", "--sparsity", "0.85")
    job = json.loads(r.stdout)
    assert r.exit_code == 0 and job["spec"]["recipe"] == latest["ref"]
    assert job["spec"]["pruning"]["method"] == "obert"  # from the recipe
    assert job["spec"]["pruning"]["sparsity"] == 0.85  # the flag over it
    r = cli("--json", "submit", *BASE, "--recipe", "no-such-recipe")
    problem = json.loads(r.stderr)["error"]
    assert r.exit_code == Exit.ERROR and problem["field"] == "recipe"


def test_recipes_list_and_show(cli: Cli) -> None:
    listed = json.loads(cli("--json", "recipes").stdout)
    assert "obert-80" in [x["name"] for x in listed]
    r = cli("recipes")
    assert r.exit_code == 0 and r.stdout.split()[:3] == ["NAME", "VERSION", "DESCRIPTION"]
    assert all(x["name"] in r.stdout for x in listed)
    r = cli("recipes", "obert-80@1")
    assert r.exit_code == 0 and r.stdout.startswith("obert-80@1: ")
    assert json.loads(r.stdout.split("\n", 1)[1])["pruning"]["method"] == "obert"
    r = cli("recipes", "nope")
    assert r.exit_code == Exit.ERROR and "recipe_not_found (404)" in r.stderr


def test_quiet_prints_the_bare_id(cli: Cli, tmp_path: Path) -> None:
    r = cli("submit", *BASE, "-q")
    assert r.exit_code == 0 and UUID.fullmatch(r.stdout), r.stdout
    assert cli("--json", "show", r.stdout.strip()).exit_code == 0
    r = cli("--json", "models", "upload", str(tiny_model_zip(tmp_path / "m.zip")), "--quiet")
    assert r.exit_code == 0 and UUID.fullmatch(r.stdout), r.stdout
    r = cli("datasets", "upload", str(tiny_dataset_csv(tmp_path / "d.csv")), "-q")
    assert r.exit_code == 0 and UUID.fullmatch(r.stdout), r.stdout
    assert r.stdout.strip() in cli("datasets", "list").stdout


def test_quiet_wait_prints_the_id_alone_and_exits_by_the_outcome(cli: Cli, server: Server) -> None:
    job_id = cli("submit", *BASE, "-q", "--idempotency-key", "quiet-wait-1").stdout.strip()
    server.finish_job(job_id, "failed", stage="prune", error_code="oom", error_message="x")
    # The same key answers the same (now failed) job, so --wait returns at once.
    r = cli("submit", *BASE, "-q", "--idempotency-key", "quiet-wait-1", "--wait")
    assert r.exit_code == Exit.JOB_FAILED and r.stdout == f"{job_id}\n"


@pytest.fixture
def canceled_job(cli: Cli) -> str:
    job_id = cli("submit", *BASE, "-q").stdout.strip()
    assert cli("cancel", job_id).exit_code == 0
    return job_id


def test_events_list_and_follow(cli: Cli, canceled_job: str) -> None:
    r = cli("events", canceled_job)
    lines = r.stdout.splitlines()
    assert r.exit_code == 0 and len(lines) == 2
    assert lines[0].startswith("#1  ") and "status  queued" in lines[0]
    assert lines[1].startswith("#2  ") and "status  canceled  canceled by request" in lines[1]
    r = cli("--json", "events", canceled_job, "--after", "1")
    assert [json.loads(x)["status"] for x in r.stdout.splitlines()] == ["canceled"]
    r = cli("events", canceled_job, "--follow")  # ends with the job: exit 4, canceled
    assert r.exit_code == Exit.JOB_CANCELED and r.stdout.splitlines() == lines
    r = cli("--json", "events", canceled_job, "-f", "--after", "2")
    assert r.exit_code == Exit.JOB_CANCELED and r.stdout == ""
    assert cli("events", canceled_job, "--after", "2").stdout == "no events\n"
    r = cli("events", "00000000-0000-0000-0000-000000000000", "-f")
    assert r.exit_code == Exit.ERROR and "job_not_found (404)" in r.stderr
