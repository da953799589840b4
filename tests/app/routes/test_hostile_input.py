"""Hostile input beyond the per-route tests: renamed pickles, unsupported or oversized model
configs, device files in zips, odd data set rows, oversized JSON bodies, and job specs whose
oBERT Fisher state would not fit the worker's memory budget."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.app.conftest import MakeClient, count_rows, stored_objects
from tests.factories.archives import (
    bert_config,
    family_config,
    model_files,
    targz_bytes,
    zip_bytes,
)

GOOD = model_files()
PICKLE = pickle.dumps({"bert.embeddings.word_embeddings.weight": [0.0] * 8}, protocol=4)
TORCH_ZIP = zip_bytes({"archive/data.pkl": PICKLE, "archive/version": b"3\n"})


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code and body["status"] == status, body
    return body


def upload_model(client: TestClient, data: bytes, filename: str = "model.zip") -> Any:
    return client.post("/v1/models", files={"file": (filename, data)})


def zip_with_device(files: dict[str, bytes], name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for fname, data in files.items():
            zf.writestr(fname, data)
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = 0o020644 << 16  # S_IFCHR
        zf.writestr(info, b"")
    return buf.getvalue()


def with_config(**changes: object) -> bytes:
    return zip_bytes(model_files(config=bert_config(**changes)))


MODEL_ATTACKS: list[tuple[str, bytes, str, str]] = [
    # name, archive, code, part of the detail
    ("pickle-renamed-safetensors", zip_bytes({**GOOD, "model.safetensors": PICKLE}),
     "unsafe_weights", "model.safetensors is a pickle"),
    ("pickle-renamed-dat", zip_bytes({**GOOD, "extra/weights.dat": PICKLE}), "unsafe_weights",
     "weights.dat is a pickle"),
    ("torch-zip-renamed", targz_bytes({**GOOD, "weights": TORCH_ZIP}), "unsafe_weights",
     "torch.save"),
    ("pickle-ckpt", zip_bytes({**GOOD, "last.ckpt": b"x"}), "unsafe_weights", "last.ckpt"),
    ("pickle-pkl", zip_bytes({**GOOD, "head.pkl": PICKLE}), "unsafe_weights", "head.pkl"),
    ("zip-device", zip_with_device(GOOD, "dev/tty"), "unsafe_archive", "special file"),
    ("unsupported-architecture", with_config(architectures=["GPT2LMHeadModel"]),
     "unsupported_architecture", "unsupported architecture 'GPT2LMHeadModel'"),
    ("decoder", with_config(is_decoder=True), "unsupported_architecture",
     "decoders are not supported"),
    ("pos-att-type-number", zip_bytes(model_files(config=family_config("deberta-v2",
     pos_att_type=3))), "invalid_model", "pos_att_type"),
    ("conv-groups-not-dividing", zip_bytes(model_files(config=family_config("deberta-v2",
     conv_kernel_size=3, conv_groups=3))), "invalid_model", "multiple of conv_groups"),
    ("distilbert-heads-not-dividing", zip_bytes(model_files(config=family_config("distilbert",
     n_heads=3))), "invalid_model", "dim must be a multiple of n_heads"),
    ("architectures-not-list", with_config(architectures="BertModel"), "invalid_model",
     "architectures"),
    ("too-many-heads", with_config(num_attention_heads=128), "invalid_model",
     "num_attention_heads"),
    ("no-heads", with_config(num_attention_heads=None), "invalid_model", "num_attention_heads"),
    ("heads-not-dividing-hidden", with_config(num_attention_heads=3), "invalid_model",
     "multiple of num_attention_heads"),
    ("huge-vocab", with_config(vocab_size=10**9), "invalid_model", "vocab_size"),
    ("huge-intermediate", with_config(intermediate_size=10**6), "invalid_model",
     "intermediate_size"),
    ("float-layers", with_config(num_hidden_layers=2.0), "invalid_model", "num_hidden_layers"),
    ("huge-positions", with_config(max_position_embeddings=10**7), "invalid_model",
     "max_position_embeddings"),
    # Hostile JSON and integers a database column cannot hold: 422s naming the file and key.
    ("config-nested-deep", zip_bytes({**GOOD, "config.json": b'{"a": ' + b"[" * 50_000 +
     b"]" * 50_000 + b"}"}), "invalid_model", "config.json: nested deeper than 64 levels"),
    ("config-5000-digits", zip_bytes({**GOOD, "config.json": b'{"num_labels": ' + b"9" * 5000 +
     b"}"}), "invalid_model", "config.json: an integer with more than 20 digits"),
    ("header-nested-deep", zip_bytes({**GOOD, "model.safetensors": struct.pack("<Q", 100_000) +
     b"[" * 50_000 + b"]" * 50_000}), "invalid_model", "model.safetensors: header is not JSON: "
     "nested deeper than 64 levels"),
    ("index-5000-digits", targz_bytes({**model_files(weights="sharded"),
     "model.safetensors.index.json": b'{"weight_map": {}, "n": ' + b"7" * 5000 + b"}"}),
     "invalid_model", "model.safetensors.index.json: an integer with more than 20 digits"),
    ("num-labels-over-int32", with_config(num_labels=2**31), "invalid_model",
     "num_labels must be an integer in 1..100000, got 2147483648"),
    ("num-labels-over-int64", with_config(num_labels=10**19), "invalid_model", "num_labels"),
    ("id2label-not-numbers", with_config(id2label={"a": "x", "b": "y"}), "invalid_model",
     "id2label keys must be label numbers"),
    # A bad config is refused before the weights (here a pickle) are looked at.
    ("bad-config-before-weights",
     zip_bytes({**model_files(config=bert_config(hidden_size=10**6)), "model.safetensors": PICKLE}),
     "invalid_model", "hidden_size"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "code", "part"), [a[1:] for a in MODEL_ATTACKS],
                         ids=[a[0] for a in MODEL_ATTACKS])  # fmt: skip
def test_hostile_model_is_refused_and_nothing_is_kept(
    client: TestClient, db_session: Session, settings_env: Path, data: bytes, code: str,
    part: str,
) -> None:  # fmt: skip
    before = count_rows(db_session)
    body = problem(upload_model(client, data), 422, code)
    assert part in body["detail"], body
    assert body["field"] == "file"
    assert count_rows(db_session) == before
    assert stored_objects(settings_env / "artifacts") == []


def test_supported_architectures_and_bounded_optional_keys_are_accepted(
    client: TestClient,
) -> None:
    data = with_config(architectures=["BertModel"], max_position_embeddings=512, type_vocab_size=2)
    assert upload_model(client, data).status_code == 201


def test_pickle_is_never_unpickled(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("unpickled")

    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    problem(upload_model(client, zip_bytes({**GOOD, "model.safetensors": PICKLE})), 422,
            "unsafe_weights")  # fmt: skip


# Data sets: each names the line and the column.
HEADER = "text,label\n"
ROWS = "".join(f"example {i},{'pos' if i % 2 else 'neg'}\n" for i in range(10))
DATASET_ATTACKS: list[tuple[str, bytes, str, str, int | None, str | None]] = [
    ("all-empty-row", (HEADER + ROWS + ",\n").encode(), "d.csv", "empty value", 12, "text"),
    ("latin1", (HEADER + ROWS).encode().replace(b"example 4", "exämple".encode("latin-1")),
     "d.csv", "UTF-8", 6, None),
    ("nul-byte", (HEADER + ROWS).encode().replace(b"example 4", b"ex\x00ample"), "d.csv",
     "NUL", 6, None),
    ("jsonl-missing-label", b"".join(
        json.dumps({"text": f"t{i}", **({"label": i % 2} if i != 3 else {})}).encode() + b"\n"
        for i in range(10)), "d.jsonl", "empty value", 4, "label"),
    ("jsonl-null-label", b"".join(
        json.dumps({"text": f"t{i}", "label": None if i == 5 else i % 2}).encode() + b"\n"
        for i in range(10)), "d.jsonl", "empty value", 6, "label"),
    ("jsonl-long-line", b"".join(
        json.dumps({"text": "x" * (500_000 if i == 2 else 3), "label": i % 2}).encode() + b"\n"
        for i in range(10)), "d.jsonl", "longer", 3, None),
    ("tsv-single-class", ("text\tlabel\n" + "".join(f"t{i}\tsame\n" for i in range(9))).encode(),
     "d.tsv", "2 distinct labels", None, "label"),
    ("header-only", HEADER.encode(), "d.csv", "rows", None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "filename", "part", "line", "column"),
    [a[1:] for a in DATASET_ATTACKS],
    ids=[a[0] for a in DATASET_ATTACKS],
)
def test_hostile_dataset_names_line_and_column(
    client: TestClient, db_session: Session, data: bytes, filename: str, part: str,
    line: int | None, column: str | None,
) -> None:  # fmt: skip
    before = count_rows(db_session)
    r = client.post("/v1/datasets", files={"file": (filename, data)})
    body = problem(r, 422, "invalid_dataset")
    assert part in body["detail"], body
    assert (body["errors"][0]["line"], body["errors"][0]["column"]) == (line, column), body
    assert count_rows(db_session) == before


def test_json_body_over_the_limit_is_413(client: TestClient) -> None:
    spec = {"model": "minilm-l6", "dataset": {"name": "tweets"}, "pad": "x" * (1024 * 1024 + 1)}
    problem(client.post("/v1/jobs", json=spec), 413, "payload_too_large")


# Job specs.
OBERT = {"model": "minilm-l6", "dataset": {"name": "tweets"}, "pruning": {"method": "obert"}}


def obert(**pruning: Any) -> dict[str, Any]:
    return {**OBERT, "pruning": {**OBERT["pruning"], **pruning}}


def test_block4_obert_needs_a_block_size_divisible_by_4(
    client: TestClient, db_session: Session
) -> None:
    before = count_rows(db_session)
    r = client.post("/v1/jobs", json=obert(structure="block4", obert={"block_size": 30}))
    assert problem(r, 422, "invalid_spec")["field"] == "pruning.obert.block_size"
    assert count_rows(db_session) == before
    ok = client.post("/v1/jobs", json=obert(structure="block4", obert={"block_size": 32}))
    assert ok.status_code == 202, ok.text


def test_fisher_state_over_the_worker_budget_is_422_naming_the_field(
    client: TestClient, db_session: Session
) -> None:
    # MiniLM-L6: 6 x 1,769,472 encoder weights x 512 x 4 bytes = about 20 GiB > 4 GiB.
    before = count_rows(db_session)
    body = problem(client.post("/v1/jobs", json=obert(obert={"block_size": 512})), 422,
                   "memory_budget_exceeded")  # fmt: skip
    assert body["field"] == "pruning.obert.block_size"
    assert "GiB" in body["detail"]
    assert count_rows(db_session) == before
    # The default block size (50) fits: about 2 GiB.
    assert client.post("/v1/jobs", json=obert()).status_code == 202
    # Magnitude pruning holds no Fisher state.
    magnitude = {**OBERT, "pruning": {"method": "magnitude", "sparsity": 0.9}}
    assert client.post("/v1/jobs", json=magnitude).status_code == 202


def test_keeping_fewer_layers_shrinks_the_estimate(make_client: MakeClient) -> None:
    # The whole job (app.services.job_estimate): 6 layers at B=50 about 5.7 GB (2.1 GB of
    # Fisher blocks, 1.4 GB of gradient buffers), 2 layers about 2.7 GB.
    client = make_client(worker_memory_budget_bytes=str(4_000_000_000))
    problem(client.post("/v1/jobs", json=obert()), 422, "memory_budget_exceeded")
    kept = {**obert(), "layers": {"keep": 2}}
    assert client.post("/v1/jobs", json=kept).status_code == 202


def test_uploaded_model_config_drives_the_estimate(make_client: MakeClient) -> None:
    # The factory model: hidden 8, FFN 16, 2 layers -> 2 x (4 x 64 + 2 x 128) = 1,024 weights:
    # B=16 holds 65,536 bytes of Fisher blocks, B=64 262,144; the budget (the whole job's) is
    # set between the two estimates (short sequences, so that the Fisher state is what grows).
    from app.schemas.job_spec import JobSpec
    from app.services.job_data_sizes import DataSizes
    from app.services.job_estimate import estimate

    uploaded = upload_model(make_client(), zip_bytes(GOOD)).json()
    small = {"dataset": {"name": "sst2", "max_length": 8},
             "training": {"batch_size": 1, "eval_batch_size": 1}}  # fmt: skip

    def need(block: int) -> int:
        body = {**obert(obert={"block_size": block}), **small, "model": "m"}
        job = JobSpec.model_validate(body)
        return estimate(job, uploaded["config"], DataSizes(8, 8, 2, None), 1e9).peak_bytes

    assert need(64) > need(16)
    client = make_client(worker_memory_budget_bytes=str((need(16) + need(64)) // 2))
    model_id = upload_model(client, zip_bytes(GOOD)).json()["id"]
    spec = {**obert(obert={"block_size": 16}), **small, "model": model_id}
    assert client.post("/v1/jobs", json=spec).status_code == 202  # 1,024 x 16 x 4 = 65,536
    spec = {**obert(obert={"block_size": 64}), **small, "model": model_id}  # 262,144 bytes
    problem(client.post("/v1/jobs", json=spec), 422, "memory_budget_exceeded")
    problem(client.post("/v1/jobs", json={**spec, "layers": {"keep": 3}}), 422, "invalid_spec")


def test_max_length_over_the_models_positions_is_422(client: TestClient) -> None:
    data = with_config(max_position_embeddings=64)
    model_id = upload_model(client, data).json()["id"]
    spec: dict[str, Any] = {"model": model_id, "dataset": {"name": "sst2", "max_length": 128}}
    body = problem(client.post("/v1/jobs", json=spec), 422, "invalid_spec")
    assert body["field"] == "dataset.max_length"
    spec["dataset"]["max_length"] = 64
    assert client.post("/v1/jobs", json=spec).status_code == 202


def test_layers_to_keep_are_checked_against_the_builtin_model(client: TestClient) -> None:
    spec = {"model": "minilm-l6", "dataset": {"name": "tweets"}, "layers": {"keep": 7}}
    body = problem(client.post("/v1/jobs", json=spec), 422, "invalid_spec")
    assert body["field"] == "layers.keep" and "6 layers" in body["detail"]
    spec["layers"] = {"keep": 6}
    assert client.post("/v1/jobs", json=spec).status_code == 202


@pytest.mark.parametrize("route", ["/v1/models", "/v1/datasets"])
def test_upload_over_the_cap_is_413_naming_the_file(make_client: MakeClient, route: str) -> None:
    client = make_client(max_model_upload_bytes="100", max_dataset_upload_bytes="100")
    r = client.post(route, files={"file": ("d.csv", b"text,label\n" + b"a,b\n" * 100)})
    assert problem(r, 413, "payload_too_large")["field"] == "file"


# Data sets: JSONL lines that the bounded JSON parser refuses are a 422 naming the line (deep
# nesting and a 5000-digit integer were 500s); nested values stay refused, naming the column.
JSONL_ROWS = [json.dumps({"text": f"t{i}", "label": i % 2}).encode() + b"\n" for i in range(10)]
JSONL_PARSER_ATTACKS: list[tuple[str, bytes, str, str | None]] = [
    ("deep-nesting", b'{"text": "x", "label": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "nested deeper than 64 levels", None),
    ("5000-digit-integer", b'{"text": "x", "label": ' + b"9" * 5000 + b"}",
     "an integer with more than 20 digits", None),
    ("float-overflow", b'{"text": "x", "label": 1e999}', "a number too large for a float",
     "label"),
    ("nested-value", b'{"text": {"a": [1]}, "label": 1}', "values must be strings or numbers",
     "text"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "part", "column"), [a[1:] for a in JSONL_PARSER_ATTACKS],
                         ids=[a[0] for a in JSONL_PARSER_ATTACKS])  # fmt: skip
def test_jsonl_refused_by_the_bounded_parser_is_422_naming_the_line(
    client: TestClient, db_session: Session, settings_env: Path, line: bytes, part: str,
    column: str | None,
) -> None:  # fmt: skip
    data = b"".join(JSONL_ROWS[:4]) + line + b"\n" + b"".join(JSONL_ROWS[4:])
    before = count_rows(db_session)
    r = client.post("/v1/datasets", files={"file": ("d.jsonl", data)})
    body = problem(r, 422, "invalid_dataset")
    assert body["detail"] == (f"line 5, column {column!r}: " if column else "line 5: ") + part
    assert (body["errors"][0]["line"], body["errors"][0]["column"]) == (5, column), body
    assert body["field"] == "file"
    assert count_rows(db_session) == before
    assert stored_objects(settings_env / "artifacts") == []
