"""The job estimate against what was measured: single training steps on this machine, whole
recipe jobs in bench/results, and the limits the API checks it against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app import recipes
from app.errors import Unprocessable
from app.schemas.job_spec import JobSpec
from app.services import job_data_sizes as ds
from app.services import job_estimate as je
from app.services.spec_limits import BUILTIN_CONFIGS, Limits, check_estimate
from app.settings import Settings
from tests.factories.encoder_configs import FAMILIES

MINILM = BUILTIN_CONFIGS["minilm-l6"]
RESULTS = Path(__file__).resolve().parents[3] / "bench" / "results"
# Full built-in data sets (train, dev): SST-2, AG News and RTE as DATA_DIR ships them.
FULL = {"sst2": (67_349, 872), "agnews": (8_000, 2_001), "rte": (1_244, 139),
        "tweets": ds.TWEETS_SIZES}  # fmt: skip
HOSTILE: dict[str, Any] = {
    "model": "minilm-l6",
    "dataset": {"name": "sst2", "max_length": 512},
    "pruning": {"method": "obert", "sparsity": 0.9, "obert": {"num_grads": 65_536}},
    "training": {"batch_size": 1024, "epochs": 100, "recovery_epochs": 100},
}


def job(body: dict[str, Any]) -> JobSpec:
    return JobSpec.model_validate(body)


def sizes(name: str, **limit: int) -> ds.DataSizes:
    train, dev = FULL[name]
    return ds.DataSizes(min(train, limit.get("train", train)), dev, ds.BUILTIN_LABELS[name],
                        ds.BUILTIN_PADDED_LENGTH[name])  # fmt: skip


@pytest.mark.parametrize(
    ("batch", "length", "measured"),
    # Peak RSS of one AdamW step of MiniLM-L6 above the loaded model (0.427 GB) and its
    # gradients and AdamW moments (0.273 GB), measured on this machine (torch 2.13 CPU).
    [(32, 128, 1.58e9), (8, 512, 2.97e9), (128, 32, 1.22e9)],
)
def test_training_activations_match_the_measured_steps(
    batch: int, length: int, measured: float
) -> None:
    got = je.Shape.of(MINILM).train_activation_bytes(batch, length)
    assert got == pytest.approx(measured, rel=0.05)


def bench_peaks(recipe: str) -> list[int]:
    """peak_rss_mb (MiB) of bench/recipe.py runs of `recipe` whose process ran one job
    (the dense model cached; a later configuration in the same process inherits the peak)."""
    out = []
    for path in sorted(RESULTS.glob("recipe-*.json")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["recipe"] == recipe and row["dense_model"]["cached"]:
                out.append(row["peak_rss_mb"] * 2**20)
    return out


@pytest.mark.parametrize(
    ("recipe", "low", "high"),
    [("obert-90@3", 0.85, 1.0), ("obert-90@2", 0.8, 1.0), ("compound-3l-80-int8@3", 0.9, 1.1)],
)
def test_estimate_against_the_peak_rss_of_real_recipe_jobs(
    recipe: str, low: float, high: float
) -> None:
    # bench/recipe.py's budget: 8,000 SST-2 examples, batch 16, length 128, 1,000 steps.
    peaks = bench_peaks(recipe)
    assert peaks, f"no bench result for {recipe}"
    spec = job({"model": "minilm-l6", "dataset": {"name": "sst2", "max_train_examples": 8000},
                "recipe": recipe, "training": {"max_steps": 1000}})  # fmt: skip
    est = je.estimate(spec, MINILM, sizes("sst2", train=8000), 55e9)
    ratios = [p / est.peak_bytes for p in peaks]
    assert all(low <= r <= high for r in ratios), (est.peak_bytes, ratios)


def test_time_estimate_against_a_real_recipe_job() -> None:
    # bench/results/recipe-20261129-1929-obert-90-...: dense fine-tuning (1,000 steps) 599 s,
    # then 2,781 s for the job (1,500 recovery steps, 13 oBERT steps of 256 gradients).
    spec = job({"model": "minilm-l6", "dataset": {"name": "sst2", "max_train_examples": 8000},
                "recipe": "obert-90@3",
                "training": {"max_steps": 1000, "recovery_max_steps": 1500}})  # fmt: skip
    est = je.estimate(
        spec, MINILM, sizes("sst2", train=8000), Settings().estimate_train_flops_per_s
    )
    # At one core's measured rate the estimate is conservative: 4,400 s against 3,380 s.
    assert 1.0 <= est.seconds / (599 + 2781) <= 1.45


@pytest.mark.parametrize("dataset", list(FULL))
@pytest.mark.parametrize("recipe", [r.ref for r in recipes.RECIPES])
def test_builtin_recipes_on_full_builtin_data_fit_the_default_limits(
    recipe: str, dataset: str
) -> None:
    spec = job({"model": "minilm-l6", "dataset": {"name": dataset}, "recipe": recipe})
    est = check_estimate(spec, MINILM, sizes(dataset), Limits.of(Settings()))
    assert est.peak_bytes < Settings().worker_memory_budget_bytes


def test_the_hostile_spec_is_over_both_limits_and_names_the_field() -> None:
    est = je.estimate(job(HOSTILE), MINILM, sizes("sst2"), 55e9)
    assert est.peak_bytes > 100 * 2**30
    assert est.largest().field == "training.batch_size"
    assert est.seconds > 10 * Settings().job_time_limit_s
    with pytest.raises(Unprocessable) as info:
        check_estimate(job(HOSTILE), MINILM, sizes("sst2"), Limits.of(Settings()))
    err = info.value
    assert (err.code, err.field) == ("memory_budget_exceeded", "training.batch_size")
    assert "8.00 GiB" in (err.detail or "") and "batch 1024 x length 512" in (err.detail or "")


def test_over_the_time_limit_names_the_longest_part() -> None:
    body = {"model": "minilm-l6", "dataset": {"name": "sst2"}, "training": {"epochs": 100}}
    with pytest.raises(Unprocessable) as info:
        check_estimate(job(body), MINILM, sizes("sst2"), Limits.of(Settings()))
    assert (info.value.code, info.value.field) == ("time_limit_exceeded", "training.epochs")
    assert "43,200 s" in (info.value.detail or "")
    grads = {**HOSTILE, "training": {}, "dataset": {"name": "rte"}}
    with pytest.raises(Unprocessable) as info:
        check_estimate(job(grads), MINILM, sizes("rte"), Limits.of(Settings()))
    assert (info.value.code, info.value.field) == ("time_limit_exceeded",
                                                  "pruning.obert.num_grads")  # fmt: skip


def test_oneshot_obert_holds_no_optimizer_state_and_fewer_layers_cost_less() -> None:
    base = {"model": "minilm-l6", "dataset": {"name": "sst2"}, "pruning": {"method": "obert"}}
    six = je.estimate(job(base), MINILM, sizes("sst2"), 55e9)
    two = je.estimate(job({**base, "layers": {"keep": 2}}), MINILM, sizes("sst2"), 55e9)
    assert six.phase == "oBERT pruning step" and two.peak_bytes < six.peak_bytes
    assert not any("AdamW" in p.what for p in six.parts)


def test_builtin_sizes_count_the_data_files(tmp_path: Path) -> None:
    (tmp_path / "rte").mkdir()
    (tmp_path / "rte" / "train.tsv").write_text("a\tb\tlabel\n" + "x\ty\tentailment\n" * 30)
    (tmp_path / "rte" / "dev.tsv").write_text("a\tb\tlabel\n" + "x\ty\tentailment\n" * 7)
    assert ds.builtin_sizes("rte", tmp_path).train == 30
    assert ds.builtin_sizes("rte", tmp_path).dev == 7
    assert ds.builtin_sizes("tweets", tmp_path).train == ds.TWEETS_SIZES[0]
    limited = ds.limited(
        ds.builtin_sizes("rte", tmp_path),
        job({"model": "minilm-l6", "dataset": {"name": "rte", "max_train_examples": 8}}),
    )
    assert limited.train == 8


# The worker's own arithmetic, which app/ mirrors without importing torch or worker code.


@pytest.mark.parametrize(("n", "block"), [(147_456, 50), (589_824, 32), (7, 4), (1, 512)])
def test_fisher_state_bytes_match_the_worker(n: int, block: int) -> None:
    torch = pytest.importorskip("torch")
    from worker.compression.fisher import BlockFisherInverse

    assert je.fisher_state_bytes(n, block) == BlockFisherInverse.state_bytes(
        n, block, torch.float32
    )


def test_the_defaults_are_the_workers() -> None:
    pytest.importorskip("torch")
    from worker.compression.config import OBertConfig

    c = OBertConfig()
    worker = (c.chunk_size, c.inverse_chunk_blocks, c.grad_batch_size, c.num_grads)
    assert worker == (je.OBERT_CHUNK, je.OBERT_INVERSE_CHUNK_BLOCKS, je.OBERT_GRAD_BATCH,
                      je.OBERT_NUM_GRADS)  # fmt: skip
    for structure in ("unstructured", "block4"):
        body = {"model": "minilm-l6", "dataset": {"name": "sst2"},
                "pruning": {"method": "obert", "structure": structure}}  # fmt: skip
        assert je.block_size(job(body)) == c.resolved_block_size(structure)
    assert je.DEFAULT_BLOCK_SIZE == {"unstructured": 50, "block4": 32}


FISHER_CASES = [
    ("bert", 50, 64), ("bert", 32, 16), ("bert", 7, 1), ("distilbert", 50, 64),
    ("modernbert", 32, 16), ("deberta-v2", 50, 64), ("deberta-v2-xlarge", 7, 1),
]  # fmt: skip


def family_model(family: str) -> Any:
    """A tiny base model of the family (DeBERTa-v2-xlarge style: separate position
    projections, which the v3 style shares with the key and query)."""
    import transformers

    from tests.factories.encoder_configs import tiny_config

    if family == "deberta-v2-xlarge":
        config = tiny_config("deberta-v2", share_att_key=False, pos_att_type="p2c|c2p")
    else:
        config = tiny_config(family)
    return transformers.AutoModel.from_config(config)


@pytest.mark.parametrize(("family", "block", "num_grads"), FISHER_CASES,
                         ids=[f"{f}-{b}-{n}" for f, b, n in FISHER_CASES])  # fmt: skip
def test_fisher_memory_matches_the_workers_on_a_real_model(
    family: str, block: int, num_grads: int
) -> None:
    """The linear sizes, Fisher blocks, gradient buffers and workspace the estimate counts
    are worker.compression.obert.fisher_memory_estimate's over a real model's prunable
    targets (the family's full set: fused qkv, gated FFN, position projections)."""
    pytest.importorskip("torch")
    from worker.compression.config import OBertConfig
    from worker.compression.obert import fisher_memory_estimate
    from worker.pipelines.architecture import prunable_targets

    model = family_model(family)
    targets = prunable_targets(model)
    shape = je.Shape.of(model.config.to_dict())
    assert shape.linear_weights * shape.layers == [m.weight.numel() for m in targets.values()]
    per_target, workspace = fisher_memory_estimate(
        targets, OBertConfig(num_grads=num_grads, block_size=block), "unstructured"
    )
    mine = je.fisher_memory(shape, block, num_grads)
    assert mine.state + mine.buffers == sum(per_target.values())
    assert mine.workspace == workspace


@pytest.mark.parametrize("family", FAMILIES)
def test_the_parameter_count_is_the_task_models_in_every_family(family: str) -> None:
    """Base model, a dense layer and the classifier: the sequence classifier's, exactly
    (ModernBERT's head norm weighs what its dense layer lacks in bias)."""
    pytest.importorskip("torch")
    import transformers

    from tests.factories.encoder_configs import tiny_config

    config = tiny_config(family, num_labels=3)
    model = transformers.AutoModelForSequenceClassification.from_config(config)
    shape = je.Shape.of(config.to_dict())
    assert shape.params(3) == sum(p.numel() for p in model.parameters())


def test_a_distilbert_and_a_modernbert_are_read_with_their_own_keys() -> None:
    pytest.importorskip("torch")
    from tests.factories.encoder_configs import tiny_config

    distil = je.Shape.of(tiny_config("distilbert", n_layers=3, dim=32, hidden_dim=48).to_dict())
    assert (distil.layers, distil.hidden, distil.intermediate) == (3, 32, 48)
    assert distil.linear_weights == [32 * 32] * 4 + [48 * 32, 32 * 48]
    assert distil.with_layers(1).params() < distil.params()
    config = tiny_config("modernbert")
    modern = je.Shape.of(config.to_dict())
    # Wqkv (3h x h), Wo, Wi (2 x ffn: gated), Wo (h x ffn)
    assert modern.linear_weights == [3 * 64 * 64, 64 * 64, 2 * 96 * 64, 64 * 96]
    # The ModernBERT's estimate: its gated FFN makes more activations than a BERT of its sizes
    bert = je.Shape.of(tiny_config("bert").to_dict())
    assert modern.train_activation_bytes(8, 128) > bert.train_activation_bytes(8, 128)
    spec = job({"model": "minilm-l6", "dataset": {"name": "sst2"}, "pruning": {"method": "obert"}})
    est = je.estimate(spec, config.to_dict(), sizes("sst2"), 55e9)
    assert est.phase == "oBERT pruning step" and est.peak_bytes > je.RUNTIME_BYTES
