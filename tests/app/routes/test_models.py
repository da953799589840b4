from __future__ import annotations

import struct
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from safetensors.numpy import save_file
from sqlalchemy.orm import Session

from tests.app.conftest import MakeClient, count_rows, stored_objects
from tests.factories.archives import (
    bert_config,
    hostile_shards_targz,
    model_files,
    num_parameters,
    targz_bytes,
    targz_with_special,
    tensors,
    zip_bytes,
    zip_with_corrupt_member,
    zip_with_symlink,
)
from tests.factories.tiny_bert import archive, write_tiny_bert


def upload(client: TestClient, data: bytes, filename: str = "model.zip", **form: str) -> Any:
    return client.post("/v1/models", files={"file": (filename, data)}, data=form)


def rejected(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (zip_bytes(model_files()), "tiny-bert.zip"),
        (zip_bytes(model_files(), prefix="tiny-bert/"), "tiny-bert.zip"),
        (targz_bytes(model_files(tokenizer="json"), prefix="tiny-bert/"), "tiny-bert.tar.gz"),
        (targz_bytes(model_files(weights="sharded")), "tiny-bert.tgz"),
    ],
    ids=["zip-root", "zip-folder", "targz-folder", "targz-sharded"],
)
def test_upload_valid_model(
    client: TestClient, settings_env: Path, data: bytes, filename: str
) -> None:
    r = upload(client, data, filename)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "tiny-bert"
    assert body["archive_format"] == ("zip" if filename.endswith(".zip") else "tar.gz")
    assert body["num_parameters"] == num_parameters()
    assert body["architecture"] == "BertForSequenceClassification"
    assert body["num_labels"] == 2
    assert body["size_bytes"] == len(data)
    assert len(stored_objects(settings_env / "artifacts")) == 1
    got = client.get(f"/v1/models/{body['id']}").json()
    assert got["sha256"] == body["sha256"]
    listed = client.get("/v1/models").json()
    assert [m["id"] for m in listed["items"]] == [body["id"]]
    # The uploaded model can be used in a job.
    # (a 2-label head: on sst2's two classes; tweets' three would be a head_mismatch)
    job = client.post("/v1/jobs", json={"model": body["id"], "dataset": {"name": "sst2"}})
    assert job.status_code == 202, job.text
    too_deep = {"model": body["id"], "dataset": {"name": "sst2"}, "layers": {"keep": 3}}
    assert rejected(client.post("/v1/jobs", json=too_deep), 422, "invalid_spec")["field"] == (
        "layers.keep"
    )


def test_upload_name_from_form(client: TestClient) -> None:
    r = upload(client, zip_bytes(model_files()), name="my model")
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "my model"


GOOD = model_files()
NO_CONFIG = {k: v for k, v in GOOD.items() if k != "config.json"}


def with_config(**changes: object) -> bytes:
    return zip_bytes(model_files(config=bert_config(**changes)))


ATTACKS: list[tuple[str, bytes, str]] = [
    ("garbage", b"this is not an archive at all", "invalid_archive"),
    ("truncated-zip", zip_bytes(GOOD)[:300], "invalid_archive"),
    ("truncated-targz", targz_bytes(GOOD)[:300], "invalid_archive"),
    ("corrupt-config", zip_with_corrupt_member(GOOD, "config.json"), "invalid_archive"),
    ("corrupt-weights", zip_with_corrupt_member(GOOD, "model.safetensors"), "invalid_archive"),
    ("zip-traversal", zip_bytes({**GOOD, "../../evil.txt": b"x"}), "unsafe_archive"),
    ("zip-absolute", zip_bytes({**GOOD, "/etc/evil": b"x"}), "unsafe_archive"),
    ("targz-traversal", targz_bytes({**GOOD, "a/../../evil": b"x"}), "unsafe_archive"),
    ("targz-absolute", targz_bytes({**GOOD, "/tmp/evil": b"x"}), "unsafe_archive"),
    ("zip-symlink", zip_with_symlink(GOOD, "vocab2.txt", "/etc/passwd"), "unsafe_archive"),
    ("targz-symlink", targz_with_special(GOOD, "link", tarfile.SYMTYPE, "/etc"), "unsafe_archive"),
    ("targz-hardlink", targz_with_special(GOOD, "hl", tarfile.LNKTYPE, "/etc/x"), "unsafe_archive"),
    ("targz-device", targz_with_special(GOOD, "dev", tarfile.CHRTYPE), "unsafe_archive"),
    ("targz-fifo", targz_with_special(GOOD, "fifo", tarfile.FIFOTYPE), "unsafe_archive"),
    ("pickle-bin", zip_bytes({**GOOD, "pytorch_model.bin": b"\x80\x04."}), "unsafe_weights"),
    ("pickle-only", zip_bytes({**model_files(weights="none"), "model.pt": b"x"}), "unsafe_weights"),
    ("no-weights", zip_bytes(model_files(weights="none")), "invalid_model"),
    ("no-config", zip_bytes(NO_CONFIG), "invalid_model"),
    ("no-tokenizer", zip_bytes(model_files(tokenizer=None)), "invalid_model"),
    ("gpt2", with_config(model_type="gpt2"), "unsupported_architecture"),
    ("huge-hidden", with_config(hidden_size=8192), "invalid_model"),
    ("many-layers", with_config(num_hidden_layers=49), "invalid_model"),
    ("config-not-object", zip_bytes({**GOOD, "config.json": b"[1, 2]"}), "invalid_model"),
    ("config-not-json", zip_bytes({**GOOD, "config.json": b"{bert"}), "invalid_model"),
    ("two-top-folders", zip_bytes({**{f"a/{k}": v for k, v in GOOD.items()}, "b/x": b"1"}),
     "invalid_model"),
    ("bad-header-length", zip_bytes({**GOOD, "model.safetensors": b"\xff" * 8 + b"{}"}),
     "invalid_model"),
    ("header-not-json", zip_bytes({**GOOD, "model.safetensors": b"\x04" + b"\0" * 7 + b"nope"}),
     "invalid_model"),
    ("truncated-weights", zip_bytes({**GOOD, "model.safetensors": GOOD["model.safetensors"][:-4]}),
     "invalid_model"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "code"), [(d, c) for _, d, c in ATTACKS],
                         ids=[n for n, _, _ in ATTACKS])  # fmt: skip
def test_bad_archive_is_rejected_and_nothing_is_kept(
    client: TestClient, db_session: Session, settings_env: Path, data: bytes, code: str
) -> None:
    before = count_rows(db_session)
    body = rejected(upload(client, data, "model.zip"), 422, code)
    assert body["field"] == "file"
    assert count_rows(db_session) == before
    assert stored_objects(settings_env / "artifacts") == []
    assert not (settings_env / "evil.txt").exists()
    assert list((settings_env / "work" / "uploads").iterdir()) == []


def test_too_many_members(make_client: MakeClient, db_session: Session) -> None:
    client = make_client(max_archive_members="10")
    files = {**GOOD, **{f"extra/{i}.txt": b"x" for i in range(8)}}
    rejected(upload(client, zip_bytes(files)), 422, "archive_too_large")
    assert count_rows(db_session)["model"] == 0


def test_uncompressed_size_over_limit(make_client: MakeClient, db_session: Session) -> None:
    client = make_client(max_uncompressed_model_bytes=str(1_000_000))
    bomb = zip_bytes({**GOOD, "notes.txt": b"\0" * 2_000_000})
    assert len(bomb) < 100_000
    rejected(upload(client, bomb), 422, "archive_too_large")
    assert count_rows(db_session)["model"] == 0


def test_upload_over_the_size_cap_is_413(
    make_client: MakeClient, db_session: Session, settings_env: Path
) -> None:
    client = make_client(max_model_upload_bytes="1000")
    rejected(upload(client, zip_bytes(GOOD)), 413, "payload_too_large")
    assert count_rows(db_session)["model"] == 0
    assert stored_objects(settings_env / "artifacts") == []


def test_request_body_over_the_route_limit_is_413(make_client: MakeClient) -> None:
    # The body limit is the upload cap plus 1 MiB of form overhead.
    client = make_client(max_model_upload_bytes="0")
    rejected(upload(client, b"\0" * (1024 * 1024 + 10)), 413, "payload_too_large")


def test_missing_file_field_is_a_validation_problem(client: TestClient) -> None:
    body = rejected(client.post("/v1/models", data={"name": "x"}), 422, "validation_error")
    assert body["field"] == "file"


def test_unknown_model_id_is_404(client: TestClient) -> None:
    rejected(client.get("/v1/models/nope"), 404, "model_not_found")


def test_streamed_body_over_the_route_limit_is_413(make_client: MakeClient) -> None:
    """Without a Content-Length the body is counted as it arrives."""
    client = make_client(max_model_upload_bytes="0")
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()

    def chunks() -> Any:
        yield head
        for _ in range(20):
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post(
        "/v1/models", content=chunks(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    rejected(r, 413, "payload_too_large")


MAX_CONFIG = bert_config(
    hidden_size=4096, num_hidden_layers=48, vocab_size=250_000, num_attention_heads=64,
    intermediate_size=16_384, max_position_embeddings=8192,
)  # fmt: skip
NO_TENSORS = struct.pack("<Q", 2) + b"{}"


def weights_of(ts: dict[str, np.ndarray], tmp_path: Path) -> bytes:
    path = tmp_path / "w.safetensors"
    save_file(ts, str(path))
    return path.read_bytes()


def test_max_config_with_no_tensors_is_refused(
    client: TestClient, db_session: Session, settings_env: Path
) -> None:
    """The 2.4 KB archive that had the worker build 10.7 billion random parameters."""
    data = zip_bytes({**model_files(weights="none", config=MAX_CONFIG),
                      "model.safetensors": NO_TENSORS})  # fmt: skip
    assert len(data) < 3000
    before = count_rows(db_session)
    body = rejected(upload(client, data), 422, "weights_mismatch")
    assert body["field"] == "file"
    assert "773 of the 773 tensors the config implies are missing" in body["detail"]
    assert "embeddings.word_embeddings.weight [250000, 4096]" in body["detail"]
    assert count_rows(db_session) == before
    assert stored_objects(settings_env / "artifacts") == []


@pytest.mark.parametrize(
    ("name", "value", "part"),
    [("bert.encoder.layer.1.attention.self.key.weight", np.zeros((8, 4), np.float32),
      "has shape [8, 4], not [8, 8]"),
     ("bert.embeddings.word_embeddings.weight", np.zeros((8, 8), np.int64), "has dtype I64"),
     ("bert.encoder.layer.0.output.LayerNorm.bias", None, "1 of the 39 tensors")],
    ids=["shape", "dtype", "missing"],
)  # fmt: skip
def test_weights_that_do_not_fit_the_config_are_refused(
    client: TestClient, tmp_path: Path, name: str, value: np.ndarray | None, part: str
) -> None:
    ts = tensors()
    if value is None:
        del ts[name]
    else:
        ts[name] = value
    data = zip_bytes({**model_files(weights="none"), "model.safetensors": weights_of(ts, tmp_path)})
    body = rejected(upload(client, data), 422, "weights_mismatch")
    assert name in body["detail"] and part in body["detail"], body


@pytest.mark.parametrize("shard", [None, "400KB"], ids=["single", "sharded"])
def test_a_real_tiny_bert_is_accepted(
    client: TestClient, tmp_path: Path, shard: str | None
) -> None:
    folder = write_tiny_bert(tmp_path / "tiny", max_shard_size=shard)
    data = archive(folder, tmp_path / "tiny.tar.gz", "tar.gz").read_bytes()
    r = upload(client, data, "tiny.tar.gz")
    assert r.status_code == 201, r.text
    # BertModel with its pooler: 30522 x 32 + 128 x 32 + 2 x 32 + 2 x 32 embeddings, 2 layers of
    # 4 x (32 x 32 + 32) + 2 x 32 + (32 x 64 + 64) + (64 x 32 + 32) + 2 x 32, pooler 32 x 32 + 32
    assert r.json()["num_parameters"] == 980_928 + 2 * 8_544 + 1_056


def test_reverse_ordered_zero_shards_are_refused_quickly(
    client: TestClient, tmp_path: Path
) -> None:
    path = hostile_shards_targz(tmp_path / "h.tar.gz", 16)
    start = time.process_time()
    body = rejected(upload(client, path.read_bytes(), "h.tar.gz"), 422, "archive_too_large")
    assert time.process_time() - start < 2.0
    assert "more than 100 times its size" in body["detail"]
