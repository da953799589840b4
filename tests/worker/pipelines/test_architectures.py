"""The architecture table applied to loaded models of every family: the full prunable set
found layer by layer (and a layer that lacks a matrix refused), every task's head loaded from
a bare checkpoint with nothing else initialised at random, the saved task model reloaded by
its class (or the task's Auto class), and token types only where the model reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from app.architectures import ARCHITECTURES
from app.catalog import TASKS
from tests.factories.encoder_configs import FAMILIES, tiny_config
from tests.factories.encoders import tokenizer_for, write_tiny_encoder
from tests.worker.pipelines.family_models import first_output, random_inputs, task_model
from worker.pipelines import architecture as a
from worker.pipelines.errors import ModelInvalid
from worker.pipelines.models import load_from_dir, refuse_random_weights
from worker.pipelines.package import load_hf_dir, model_class, save_hf_dir
from worker.pipelines.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = torch.device("cpu")
READS_TYPES = {"bert", "electra"}  # type_vocab_size > 1 (RoBERTa and XLM-R have one type)


@pytest.fixture(scope="module")
def bare_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A saved base model (no task head) of each family, with its tokenizer."""
    root = tmp_path_factory.mktemp("bare")
    return {f: write_tiny_encoder(root / f, f, with_head=False) for f in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_the_full_prunable_set_is_found(family: str) -> None:
    model = task_model(family)
    arch = a.architecture_of(model)
    config = a.model_config(model)
    targets = a.prunable_targets(model)
    per_layer = arch.layer_matrices(config)
    assert len(targets) == config.layers * len(per_layer) == 2 * len(per_layer)
    prefix = a.layer_prefix(model)
    for name, linear in targets.items():
        assert name.startswith(prefix) and model.get_submodule(name) is linear
        matrix = next(m for m in per_layer if name.endswith("." + m.path))
        assert tuple(linear.weight.shape) == matrix.shape(config, arch.ffn.gated)
    assert {a.target_layer(n, prefix) for n in targets} == {"0", "1"}
    _, _, layers = a.layer_list(model)
    linears = {
        f"{prefix}{i}.{n}"
        for i, layer in enumerate(layers)
        for n, m in layer.named_modules()
        if isinstance(m, nn.Linear)
    }
    assert linears == set(targets)  # every Linear of a layer is in the set


def test_deberta_with_separate_position_projections_has_eight_matrices() -> None:
    model = task_model("deberta-v2", share_att_key=False)
    targets = a.prunable_targets(model)
    assert len(targets) == 2 * 8
    assert {n.rsplit(".", 1)[1] for n in targets} >= {"pos_key_proj", "pos_query_proj"}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_layer_without_one_of_its_matrices_is_refused(family: str) -> None:
    model = task_model(family)
    arch = a.architecture_of(model)
    victim = arch.layer_matrices(a.model_config(model))[-1].path
    _, _, layers = a.layer_list(model)
    a.set_attribute(layers[1], victim, nn.Identity())
    with pytest.raises(ModelInvalid) as info:
        a.prunable_targets(model)
    assert info.value.code == "layout_mismatch"
    assert "layer 1" in info.value.message and victim in info.value.message
    assert arch.display in info.value.message


@pytest.mark.parametrize("family", ["bert", "modernbert"])
def test_a_layer_with_a_linear_the_table_does_not_list_is_refused(family: str) -> None:
    model = task_model(family)
    _, _, layers = a.layer_list(model)
    layers[0].add_module("adapter", nn.Linear(4, 4))
    with pytest.raises(ModelInvalid) as info:
        a.prunable_targets(model)
    assert info.value.code == "layout_mismatch"
    assert "layer 0" in info.value.message and "adapter" in info.value.message


def test_a_model_outside_the_table_is_unsupported() -> None:
    from transformers import AlbertConfig, AlbertModel

    model = AlbertModel(AlbertConfig(hidden_size=32, num_attention_heads=2, intermediate_size=32))
    with pytest.raises(ModelInvalid) as info:
        a.prunable_targets(model)
    assert info.value.code == "unsupported_architecture" and "'albert'" in info.value.message


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_task_head_loads_on_a_bare_checkpoint(
    bare_dirs: dict[str, Path], family: str, task: str
) -> None:
    loaded = load_from_dir(
        bare_dirs[family], ["a", "b", "c"], CPU, seed=0, source="t", task=get_task(task)
    )
    arch = ARCHITECTURES[family]
    assert type(loaded.model).__name__.startswith(arch.class_prefix + "For")
    assert loaded.has_trained_head is False
    heads = a.head_prefixes(arch, task)  # type: ignore[arg-type]
    own = {n for n, _ in loaded.model.named_parameters() if not n.startswith(arch.base_prefix)}
    assert own and all(n.startswith(heads) for n in own)  # the head is all that is not base
    assert len(a.prunable_targets(loaded.model)) == 2 * len(
        arch.layer_matrices(a.model_config(loaded.model))
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_an_unsupported_model_type_is_refused_at_load(
    bare_dirs: dict[str, Path], family: str, tmp_path: Path
) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    for f in bare_dirs[family].iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "albert"}))
    with pytest.raises(ModelInvalid) as info:
        load_from_dir(folder, ["a", "b"], CPU, seed=0, source="t")
    assert info.value.code == "unsupported_architecture"


# allowed: None when refused, else whether the checkpoint's own head was loaded
@pytest.mark.parametrize(
    ("family", "task", "fresh", "allowed"),
    [
        ("distilbert", "sequence_classification", ["pre_classifier.weight"], False),
        ("distilbert", "token_classification", ["pre_classifier.weight"], None),
        ("modernbert", "question_answering", ["head.dense.weight", "classifier.bias"], False),
        ("deberta-v2", "regression", ["pooler.dense.weight", "classifier.weight"], False),
        ("deberta-v2", "question_answering", ["pooler.dense.weight"], None),
        ("roberta", "sequence_classification", ["classifier.out_proj.weight"], False),
        (
            "roberta",
            "sequence_classification",
            ["roberta.pooler.dense.weight", "roberta.pooler.dense.bias"],
            None,
        ),
        (
            "bert",
            "question_answering",
            ["bert.pooler.dense.weight", "bert.pooler.dense.bias"],
            True,
        ),
        ("bert", "question_answering", ["bert.pooler.dense.weight"], None),
        ("mpnet", "token_classification", ["mpnet.encoder.layer.0.attention.attn.q.weight"], None),
    ],
)
def test_only_the_family_task_head_may_be_random(
    family: str, task: str, fresh: list[str], allowed: bool | None
) -> None:
    report = {"missing_keys": fresh}
    arch = ARCHITECTURES[family]
    if allowed is not None:
        assert refuse_random_weights(report, "m", arch, task) is allowed  # type: ignore[arg-type]
    else:
        with pytest.raises(ModelInvalid, match="initialised at random"):
            refuse_random_weights(report, "m", arch, task)  # type: ignore[arg-type]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_saved_task_model_reloads_by_its_class_or_the_task_auto_class(
    family: str, tmp_path: Path
) -> None:
    model = task_model(family, "token_classification")
    folder = save_hf_dir(model, tokenizer_for(family), tmp_path / "saved")
    inputs = random_inputs(model, 2, 12)
    again = load_hf_dir(folder)
    assert type(again) is type(model)
    torch.testing.assert_close(first_output(again, inputs), first_output(model, inputs))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["Gone"]}))
    rebuilt = load_hf_dir(folder, "AutoModelForTokenClassification")
    assert type(rebuilt) is type(model)
    assert model_class(rebuilt.config, "AutoModelForQuestionAnswering").__name__.endswith(
        "ForQuestionAnswering"
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_token_types_only_where_the_model_reads_them(family: str) -> None:
    from transformers import PreTrainedTokenizerFast

    model = task_model(family)
    assert a.uses_token_type_ids(model) is (family in READS_TYPES)
    tok: PreTrainedTokenizerFast = tokenizer_for(family)
    generic = PreTrainedTokenizerFast(
        tokenizer_object=tok.backend_tokenizer,
        pad_token=tok.pad_token,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    assert "token_type_ids" in generic("a test")  # a tokenizer that emits them for any model
    a.fit_tokenizer_inputs(model, generic)
    emits = "token_type_ids" in generic("a test", "a pair")
    assert emits is (family in READS_TYPES)
    batch = generic(["a test", "another"], padding=True, return_tensors="pt")
    with torch.no_grad():
        model(**batch)  # every input the tokenizer gives is one the model takes


def test_model_config_reads_the_family_keys() -> None:
    model = task_model("distilbert")
    config = a.model_config(model)
    assert (config.hidden, config.layers, config.heads, config.ffn) == (64, 2, 4, 96)
    assert tiny_config("distilbert").n_layers == 2
