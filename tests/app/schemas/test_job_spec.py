"""The job spec takes strict JSON types, in Python and in JSON alike (the API validates the
parsed body, the worker the stored spec)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from app import recipes
from app.schemas.job_spec import MAX_URL_LENGTH, JobSpec

BASE: dict[str, Any] = {"model": "minilm-l6", "dataset": {"name": "sst2"}}


def with_(path: str, value: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(BASE))
    node = body
    *parents, last = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return body


def loc(err: ValidationError) -> str:
    return ".".join(str(x) for x in err.errors()[0]["loc"])


@pytest.mark.parametrize(
    ("path", "value"),
    [("training.batch_size", "2"), ("training.batch_size", True), ("training.batch_size", 2.0),
     ("training.max_steps", 1.5), ("training.learning_rate", "1e-4"),
     ("training.learning_rate", False), ("distillation.enabled", 1),
     ("distillation.enabled", "yes"), ("dataset.max_length", "128"), ("model", 7)],
)  # fmt: skip
@pytest.mark.parametrize("mode", ["python", "json"])
def test_loose_types_are_refused(path: str, value: Any, mode: str) -> None:
    body = with_(path, value)
    with pytest.raises(ValidationError) as info:
        if mode == "json":
            JobSpec.model_validate_json(json.dumps(body))
        else:
            JobSpec.model_validate(body)
    assert loc(info.value) == path


@pytest.mark.parametrize("mode", ["python", "json"])
def test_an_integer_is_a_number(mode: str) -> None:
    body = with_("training.learning_rate", 1)
    body["pruning"] = {"sparsity": 0, "schedule": {"kind": "gradual", "epochs": 2}}
    spec = (JobSpec.model_validate_json(json.dumps(body)) if mode == "json"
            else JobSpec.model_validate(body))  # fmt: skip
    assert spec.training.learning_rate == 1.0 and isinstance(spec.training.learning_rate, float)
    assert spec.pruning.sparsity == 0.0


def test_a_stored_spec_validates_again() -> None:
    """What the API stores (model_dump(mode="json")) is what the worker validates."""
    for recipe in recipes.RECIPES:
        spec = JobSpec.model_validate({**BASE, "recipe": recipe.ref})
        again = JobSpec.model_validate(json.loads(json.dumps(spec.model_dump(mode="json"))))
        assert again == spec


def test_webhook_url_fits_its_column() -> None:
    head = "https://example.com/"
    ok = JobSpec.model_validate({**BASE, "webhook_url": head + "a" * (MAX_URL_LENGTH - len(head))})
    assert len(str(ok.webhook_url)) == MAX_URL_LENGTH
    for url in (head + "a" * (MAX_URL_LENGTH + 1 - len(head)), head + "\u00e9" * 400):
        with pytest.raises(ValidationError) as info:
            JobSpec.model_validate({**BASE, "webhook_url": url})
        assert loc(info.value) == "webhook_url"


def test_task_defaults_sit_between_the_recipe_and_the_spec() -> None:
    from app.schemas.job_spec import JobSpec

    base = {"model": "minilm-l6", "dataset": {"name": "squad"}, "recipe": "obert-80"}
    qa = JobSpec.model_validate({**base, "task": "question_answering"})
    assert qa.training.learning_rate == 8e-5  # the task's, over the recipe's 5e-5
    assert qa.dataset.max_length == 384
    mine = {**base, "task": "question_answering", "training": {"learning_rate": 3e-5}}
    assert JobSpec.model_validate(mine).training.learning_rate == 3e-5  # the spec's own wins
    cls = JobSpec.model_validate({**base, "dataset": {"name": "sst2"}})
    assert cls.task == "sequence_classification" and cls.training.learning_rate == 5e-5
    assert cls.dataset.max_length == 128


def test_doc_stride_is_at_most_half_the_window() -> None:
    import pytest
    from pydantic import ValidationError

    from app.schemas.job_spec import DatasetSpec

    assert DatasetSpec.model_validate({"name": "squad", "max_length": 256, "doc_stride": 128})
    with pytest.raises(ValidationError, match="at most half of max_length"):
        DatasetSpec.model_validate({"name": "squad", "max_length": 256, "doc_stride": 129})
    with pytest.raises(ValidationError, match="low < high"):
        DatasetSpec.model_validate({"name": "stsb", "score_range": [5, 0]})


def test_a_doc_stride_the_worker_could_not_window_is_refused() -> None:
    import pytest
    from pydantic import ValidationError

    from app.schemas.job_spec import DatasetSpec

    assert DatasetSpec.model_validate({"name": "squad", "max_length": 8, "doc_stride": 3})
    with pytest.raises(ValidationError, match="max_length - 5"):
        DatasetSpec.model_validate({"name": "squad", "max_length": 8, "doc_stride": 4})


@pytest.mark.parametrize("mode", ["python", "json"])
def test_a_dataset_name_alone_is_the_object(mode: str) -> None:
    body = {**BASE, "dataset": "sst2"}
    spec = (JobSpec.model_validate_json(json.dumps(body)) if mode == "json"
            else JobSpec.model_validate(body))  # fmt: skip
    assert spec.dataset == JobSpec.model_validate(BASE).dataset
    assert spec.model_dump(mode="json")["dataset"]["name"] == "sst2"


def test_a_dataset_name_gets_its_tasks_dataset_defaults() -> None:
    """The name is made an object before the task's defaults are merged under it."""
    spec = JobSpec.model_validate({"model": "minilm-l6", "dataset": "squad",
                                   "task": "question_answering"})  # fmt: skip
    assert spec.dataset.name == "squad" and spec.dataset.max_length == 384


def test_the_schema_documents_a_dataset_name() -> None:
    prop = JobSpec.model_json_schema()["properties"]["dataset"]
    assert {"type": "string"} in prop["anyOf"]
    assert {"$ref": "#/$defs/DatasetSpec"} in prop["anyOf"]


@pytest.mark.parametrize(
    ("path", "value", "guess"),
    [("pruning.sparsity", 80, "; 0.8?"), ("pruning.sparsity", 99, "; 0.99?"),
     ("pruning.sparsity", 99.5, ""), ("pruning.sparsity", 1, "")],
)  # fmt: skip
def test_a_percentage_sparsity_keeps_its_error_type_and_field(
    path: str, value: float, guess: str
) -> None:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(with_(path, value))
    [err] = info.value.errors()
    assert (loc(info.value), err["type"]) == (path, "less_than_equal")
    assert (
        err["msg"] == f"Input should be less than or equal to 0.99: a fraction in [0, 0.99]{guess}"
    )
