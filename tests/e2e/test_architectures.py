"""End to end per encoder family: a tiny random model of each family (hidden 64, 2 layers) with
a tokenizer trained here, saved with `save_pretrained`, zipped and uploaded through the HTTP
API, compressed by a real Celery worker on Redis and PostgreSQL (gradual oBERT, distillation,
QAT int8, ONNX export with parity) for a task of each kind, downloaded and reloaded with
plain transformers: sparsity exactly the target over the family's full prunable set."""

from __future__ import annotations

import random
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_redis_postgres import download, run_to_success, running_stack
from tests.e2e.test_tasks import ner_rows, qa_rows, upload_dataset, write_jsonl
from tests.factories.encoders import write_tiny_encoder
from tests.factories.tiny_bert import archive

pytestmark = pytest.mark.e2e

# One task per family, so that every task runs on more than one family besides BERT's tests.
FAMILY_TASKS = {
    "roberta": "sequence_classification",
    "xlm-roberta": "token_classification",
    "distilbert": "question_answering",
    "electra": "regression",
    "deberta-v2": "question_answering",
    "mpnet": "sequence_classification",
    "modernbert": "token_classification",
}
AUTO_CLASSES = {
    "sequence_classification": "AutoModelForSequenceClassification",
    "regression": "AutoModelForSequenceClassification",
    "token_classification": "AutoModelForTokenClassification",
    "question_answering": "AutoModelForQuestionAnswering",
}
SPARSITY = 0.6


@pytest.fixture(scope="module")
def shared_stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.Client, list[Path]]]:
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


def score_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    words = ("good", "bad", "fine", "great", "awful", "okay", "nice", "poor")
    rows = []
    for _ in range(n):
        a, b = rng.sample(words, 2)
        rows.append({"sentence1": f"the film was {a}", "sentence2": f"the film was {b}",
                     "score": round(rng.uniform(0, 5), 2)})  # fmt: skip
    return rows


def dataset_for(client: httpx.Client, task: str, tmp_path: Path) -> dict[str, Any]:
    """The job's `dataset` block: the built-in tweets for classification, else an upload."""
    if task == "sequence_classification":
        return {"name": "tweets", "max_train_examples": 64, "max_eval_examples": 32,
                "max_length": 32}  # fmt: skip
    if task == "question_answering":
        rows, options = qa_rows(40), {"max_length": 48, "doc_stride": 16, "max_answer_length": 5}
    elif task == "token_classification":
        rows, options = ner_rows(40), {"max_length": 24}
    else:
        rows, options = score_rows(48), {"max_length": 24}
    uploaded = upload_dataset(client, write_jsonl(rows, tmp_path / f"{task}.jsonl"), task)
    return {"name": uploaded["id"], **options}


def upload_encoder(client: httpx.Client, family: str, tmp_path: Path) -> str:
    folder = write_tiny_encoder(tmp_path / family, family, with_head=False)
    path = archive(folder, tmp_path / f"{family}.zip", "zip")
    with path.open("rb") as f:
        r = client.post("/v1/models", files={"file": (path.name, f, "application/zip")})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def reload(client: httpx.Client, artifact: dict[str, Any], task: str, tmp_path: Path) -> Any:
    import transformers

    tgz = download(client, artifact, tmp_path / "model.tar.gz")
    with tarfile.open(tgz) as t:
        t.extractall(tmp_path / "model", filter="data")
    folder = next(p.parent for p in (tmp_path / "model").rglob("config.json"))
    transformers.AutoTokenizer.from_pretrained(str(folder))
    return getattr(transformers, AUTO_CLASSES[task]).from_pretrained(str(folder))


@pytest.mark.parametrize("family", list(FAMILY_TASKS))
def test_every_family_is_compressed_end_to_end(
    shared_stack: tuple[httpx.Client, list[Path]], tmp_path: Path, family: str
) -> None:
    from torch import nn

    from worker.compression import sparsity_of
    from worker.pipelines.architecture import architecture_of, layer_list, prunable_targets

    client, logs = shared_stack
    task = FAMILY_TASKS[family]
    spec = {
        "task": task,
        "model": upload_encoder(client, family, tmp_path),
        "dataset": dataset_for(client, task, tmp_path),
        "pruning": {
            "method": "obert", "sparsity": SPARSITY,
            "schedule": {"kind": "gradual", "steps": 6, "pruning_steps": 2, "init_sparsity": 0.3},
            "obert": {"num_grads": 8, "block_size": 16, "grad_batch_size": 4},
        },
        "distillation": {"enabled": True},
        "quantization": {"method": "qat_int8", "qat_steps": 2},
        "training": {"max_steps": 4, "recovery_max_steps": 8, "batch_size": 8},
    }  # fmt: skip
    _, arts, report = run_to_success(client, spec, logs, tmp_path)
    assert {"model", "model_int8", "model_onnx", "model_int8_onnx", "report"} <= set(arts)
    assert report["task"] == task
    steps = [s["sparsity"] for s in report["pruning"]["applied"]]
    assert (
        len(steps) >= 2 and steps[0] == pytest.approx(0.3) and steps[-1] == pytest.approx(SPARSITY)
    )
    assert report["teacher_cache"]["items"] > 0  # the distillation teacher ran
    assert report["int8"] is not None and report["stage_seconds"].get("qat", 0) > 0
    assert report["onnx"]["fp32"]["parity"]["agreement"] >= 0.995
    int8 = report["onnx"]["int8"]["parity"]  # the int8 ONNX file against PyTorch's int8 model
    if task == "regression":  # a tiny model's scores barely vary: their correlation says little
        assert int8["max_abs_diff"] < 0.05
    else:
        assert int8["agreement"] >= 0.95

    model = reload(client, arts["model"], task, tmp_path)
    assert architecture_of(model).family == family
    targets = prunable_targets(model)
    # every Linear of every layer, counted on the module itself: the full prunable set
    _, _, layers = layer_list(model)
    linears = [m for layer in layers for m in layer.modules() if isinstance(m, nn.Linear)]
    assert len(targets) == len(linears) and {id(m) for m in targets.values()} == set(
        map(id, linears)
    )
    assert sparsity_of(targets).overall == pytest.approx(SPARSITY, abs=1e-3)
    assert report["compressed"]["sparsity"]["overall"] == pytest.approx(SPARSITY, abs=1e-3)
