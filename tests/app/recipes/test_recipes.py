"""The recipe catalogue: every built-in recipe makes a valid spec; refs and deep merge."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app import recipes
from app.schemas.job_spec import JobSpec

BASE = {"model": "minilm-l6", "dataset": {"name": "sst2"}}
SPARSE = ["compound-3l-80-int8", "gmp-80", "gmp-90", "obert-80", "obert-90"]
STRUCTURED = ["structured-2x", "structured-2x-int8", "structured-3x"]
NAMES = SPARSE + STRUCTURED
LATEST = {"compound-3l-80-int8": 3, "gmp-80": 2, "gmp-90": 2, "obert-80": 2, "obert-90": 3,
          "structured-2x": 1, "structured-2x-int8": 1, "structured-3x": 1}  # fmt: skip


def test_catalogue_names_and_versions() -> None:
    assert [r.name for r in recipes.latest()] == NAMES
    assert len({r.ref for r in recipes.RECIPES}) == len(recipes.RECIPES)
    assert all(r.version >= 1 and r.description for r in recipes.RECIPES)


@pytest.mark.parametrize("name", SPARSE)
def test_each_recipe_validates_and_matches_its_name(name: str) -> None:
    spec = JobSpec.model_validate({**BASE, "recipe": name})
    assert spec.recipe == f"{name}@{LATEST[name]}"
    p = spec.pruning
    assert p.schedule.kind == "gradual"
    assert p.sparsity == (0.9 if name.endswith("90") else 0.8)
    assert p.method == ("magnitude" if name.startswith("gmp") else "obert")
    # Version 2: the paper's recipe, the same for oBERT and GMP but for the criterion.
    assert spec.distillation.enabled and spec.distillation.hardness == 1.0
    assert spec.distillation.temperature == 2.0
    assert p.schedule.lr_rewind
    assert p.schedule.epochs == 0.75 * spec.training.recovery_epochs  # then recovery
    assert p.schedule.init_sparsity == (0.3 if name.startswith("compound") else 0.7)
    if name.startswith("compound"):
        assert spec.layers is not None and spec.layers.keep == 3
        assert p.structure == "block4"
        assert spec.quantization.method != "none"
        assert spec.training.learning_rate == 1.5e-4  # version 3: a student's rate
    else:
        assert spec.training.learning_rate == 5e-5


@pytest.mark.parametrize("name", STRUCTURED)
def test_each_structured_recipe_validates_and_matches_its_name(name: str) -> None:
    spec = JobSpec.model_validate({**BASE, "recipe": f"{name}@2"})
    assert spec.recipe == f"{name}@2"
    p = spec.pruning
    assert p.method == "structured" and p.structured is not None
    assert p.structured.target_speedup == (3.0 if "3x" in name else 2.0)
    assert p.structured.steps == 3 and p.structured.runtime == "onnxruntime-cpu"
    assert p.schedule.kind == "oneshot" and p.obert is None  # its own steps instead
    assert spec.distillation.enabled and spec.distillation.hardness == 1.0
    assert spec.distillation.temperature == 2.0
    assert spec.quantization.method == ("qat_int8" if name.endswith("int8") else "none")
    assert spec.layers is None
    # obert-80's recovery length; version 2 at 1.5e-4, version 1 at obert-80's rate
    obert = JobSpec.model_validate({**BASE, "recipe": "obert-80"}).training
    assert spec.training == obert.model_copy(update={"learning_rate": 1.5e-4})
    first = JobSpec.model_validate({**BASE, "recipe": f"{name}@1"})
    assert first.training == obert
    assert first.model_dump(exclude={"recipe", "training"}) == spec.model_dump(
        exclude={"recipe", "training"}
    )
    assert p.structured.normalize_loss_by == "output"  # as they were, before the option
    assert p.structured.target_band == "around"  # likewise


@pytest.mark.parametrize("name", STRUCTURED)
def test_structured_version_3_compares_losses_against_the_stream_only(name: str) -> None:
    v3 = JobSpec.model_validate({**BASE, "recipe": f"{name}@3"})
    v2 = JobSpec.model_validate({**BASE, "recipe": f"{name}@2"})
    assert v3.recipe == f"{name}@3"
    assert v3.pruning.structured is not None and v2.pruning.structured is not None
    assert v3.pruning.structured.normalize_loss_by == "stream"
    assert v3.model_dump(exclude={"recipe", "pruning"}) == v2.model_dump(
        exclude={"recipe", "pruning"}
    )
    assert v3.pruning.structured.model_dump(exclude={"normalize_loss_by"}) == (
        v2.pruning.structured.model_dump(exclude={"normalize_loss_by"})
    )


@pytest.mark.parametrize("name", STRUCTURED)
def test_structured_version_4_keeps_plans_at_least_as_fast_as_the_target_only(
    name: str,
) -> None:
    v4 = JobSpec.model_validate({**BASE, "recipe": name})
    v3 = JobSpec.model_validate({**BASE, "recipe": f"{name}@3"})
    assert v4.recipe == f"{name}@4"
    assert v4.pruning.structured is not None and v3.pruning.structured is not None
    assert (v4.pruning.structured.target_band, v3.pruning.structured.target_band) == (
        "at_least", "around",
    )  # fmt: skip
    assert v4.model_dump(exclude={"recipe", "pruning"}) == v3.model_dump(
        exclude={"recipe", "pruning"}
    )
    assert v4.pruning.structured.model_dump(exclude={"target_band"}) == (
        v3.pruning.structured.model_dump(exclude={"target_band"})
    )


def test_the_structured_compound_is_structured_2x_and_int8() -> None:
    two = JobSpec.model_validate({**BASE, "recipe": "structured-2x"})
    compound = JobSpec.model_validate({**BASE, "recipe": "structured-2x-int8"})
    assert compound.model_dump(exclude={"recipe", "quantization"}) == two.model_dump(
        exclude={"recipe", "quantization"}
    )


def test_a_structured_recipe_takes_overrides_and_refuses_a_schedule() -> None:
    spec = JobSpec.model_validate(
        {**BASE, "recipe": "structured-3x", "pruning": {"structured": {"steps": 1}}}
    )
    assert spec.pruning.structured is not None
    assert (spec.pruning.structured.steps, spec.pruning.structured.target_speedup) == (1, 3.0)
    with pytest.raises(ValidationError) as e:
        gradual = {"schedule": {"kind": "gradual", "epochs": 1}}
        JobSpec.model_validate({**BASE, "recipe": "structured-2x", "pruning": gradual})
    assert [err["loc"] for err in e.value.errors()] == [("pruning", "schedule")]
    with pytest.raises(ValidationError) as e:
        JobSpec.model_validate({**BASE, "recipe": "structured-2x", "pruning": {"method": "obert"}})
    assert [err["loc"] for err in e.value.errors()] == [("pruning", "structured")]


def test_obert_90_version_3_takes_more_fisher_gradients_only() -> None:
    v3 = JobSpec.model_validate({**BASE, "recipe": "obert-90"})
    v2 = JobSpec.model_validate({**BASE, "recipe": "obert-90@2"})
    assert v3.pruning.obert is not None and v3.pruning.obert.num_grads == 256
    assert v2.pruning.obert is not None and v2.pruning.obert.num_grads is None  # the default, 64
    # nothing else moved: the same schedule, distillation and training as version 2
    assert v3.model_dump(exclude={"recipe", "pruning"}) == v2.model_dump(
        exclude={"recipe", "pruning"}
    )
    assert v3.pruning.model_dump(exclude={"obert"}) == v2.pruning.model_dump(exclude={"obert"})
    assert v3.pruning.obert.model_dump(exclude={"num_grads"}) == v2.pruning.obert.model_dump(
        exclude={"num_grads"}
    )


def test_compound_version_2_keeps_its_learning_rate() -> None:
    spec = JobSpec.model_validate({**BASE, "recipe": "compound-3l-80-int8@2"})
    assert spec.training.learning_rate == 5e-5 and spec.layers is not None


def test_version_1_still_means_what_it_meant() -> None:
    gmp = JobSpec.model_validate({**BASE, "recipe": "gmp-90@1"})
    assert not gmp.distillation.enabled and gmp.pruning.schedule.kind == "gradual"
    assert gmp.pruning.schedule.epochs == gmp.training.recovery_epochs == 3.0
    assert not gmp.pruning.schedule.lr_rewind and gmp.pruning.schedule.init_sparsity == 0.0
    obert = JobSpec.model_validate({**BASE, "recipe": "obert-80@1"})
    assert obert.distillation.enabled and obert.pruning.schedule.init_sparsity == 0.3


def test_pinned_ref_and_overrides_deep_merge() -> None:
    spec = JobSpec.model_validate(
        {**BASE, "recipe": "obert-80@1", "pruning": {"sparsity": 0.7},
         "training": {"batch_size": 8}}
    )  # fmt: skip
    assert spec.pruning.sparsity == 0.7
    assert spec.pruning.method == "obert"  # kept from the recipe
    assert spec.training.batch_size == 8
    assert spec.training.recovery_epochs == 2.0  # kept from the recipe


def test_a_different_schedule_kind_replaces_the_recipes() -> None:
    spec = JobSpec.model_validate({**BASE, "recipe": "gmp-80", "pruning": {"schedule": {}}})
    assert spec.pruning.schedule.kind == "gradual"  # merged: same variant
    spec = JobSpec.model_validate(
        {**BASE, "recipe": "gmp-80", "pruning": {"schedule": {"kind": "oneshot"}}}
    )
    assert spec.pruning.schedule.kind == "oneshot"


@pytest.mark.parametrize("ref", ["nope", "obert-80@9", "obert-80@"])
def test_unknown_recipe_is_an_error_on_the_recipe_field(ref: str) -> None:
    with pytest.raises(ValidationError) as e:
        JobSpec.model_validate({**BASE, "recipe": ref})
    assert [err["loc"] for err in e.value.errors()] == [("recipe",)]
    assert "unknown recipe" in str(e.value)


def test_find_and_deep_merge() -> None:
    assert recipes.find("gmp-90").ref == "gmp-90@2"
    assert recipes.find("gmp-90@1").version == 1
    with pytest.raises(recipes.UnknownRecipe):
        recipes.find("gmp-90@3")
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    assert recipes.deep_merge(base, {"a": {"c": 3}, "d": [2]}) == {"a": {"b": 1, "c": 3}, "d": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}  # not mutated
