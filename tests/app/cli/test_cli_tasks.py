"""`scalpel datasets upload --task` and `scalpel submit --task` against a real API server."""

from __future__ import annotations

import json
from pathlib import Path

from app.cli.context import Exit
from tests.app.cli.conftest import Cli
from tests.app.routes.test_dataset_tasks import conll, squad_json


def test_upload_and_submit_for_a_task(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "qa.json").write_bytes(squad_json())
    r = cli("--json", "datasets", "upload", str(tmp_path / "qa.json"), "--task",
            "question_answering")  # fmt: skip
    assert r.exit_code == 0, r.output
    dataset = json.loads(r.stdout)
    assert (dataset["task"], dataset["format"], dataset["num_rows"]) == (
        "question_answering", "squad", 9)  # fmt: skip
    r = cli("--json", "submit", "--task", "question_answering", "--model", "minilm-l6",
            "--dataset", dataset["id"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["spec"]["task"] == "question_answering"
    r = cli("--json", "submit", "--model", "minilm-l6", "--dataset", dataset["id"])
    problem = json.loads(r.stderr)["error"]
    assert r.exit_code == Exit.ERROR
    assert (problem["code"], problem["field"]) == ("task_mismatch", "task")


def test_upload_a_tagged_file_with_its_column_and_scheme(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "ner.txt").write_bytes(conll())
    r = cli("--json", "datasets", "upload", str(tmp_path / "ner.txt"), "--task",
            "token_classification", "--tag-column", "4", "--tag-scheme", "IOB1")  # fmt: skip
    assert r.exit_code == 0, r.output
    dataset = json.loads(r.stdout)
    assert (dataset["label_column"], dataset["options"]) == ("4", {"tag_scheme": "IOB1"})
    r = cli("--json", "datasets", "upload", str(tmp_path / "ner.txt"), "--task",
            "token_classification", "--tag-scheme", "IOB2")  # fmt: skip
    problem = json.loads(r.stderr)["error"]
    assert r.exit_code == Exit.ERROR and problem["code"] == "invalid_dataset"
    assert problem["errors"][0]["line"] == 3
