"""The estimate of a structured pruning job: the calibration's float64 state (checked against
the worker's StructuredCalibration on real tiny models), and time and memory that grow with
the model's FFN, its layers, the calibration batches and the steps."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import Unprocessable
from app.schemas.job_spec import JobSpec
from app.services import job_data_sizes as ds
from app.services import job_estimate as je
from app.services.spec_limits import BUILTIN_CONFIGS, Limits, check_estimate
from app.settings import Settings

MINILM = BUILTIN_CONFIGS["minilm-l6"]
SST2 = ds.DataSizes(8_000, 872, 2, 35)
PHASE = "structured calibration"


def job(structured: dict[str, Any] | None = None, **extra: Any) -> JobSpec:
    pruning: dict[str, Any] = {"method": "structured"}
    if structured is not None:
        pruning["structured"] = structured
    return JobSpec.model_validate(
        {"model": "minilm-l6", "dataset": {"name": "sst2"}, "pruning": pruning, **extra}
    )


def config(**sizes: int) -> dict[str, Any]:
    return {**MINILM, **sizes}


def part(parts: list[je.Part], prefix: str) -> je.Part:
    return next(p for p in parts if p.what.startswith(prefix))


def test_the_state_is_two_float64_matrices_and_the_weights_per_projection() -> None:
    resident, work = je.structured_state(je.Shape.of(MINILM))
    # 6 layers x (attention output: 385 x 385, FFN output: 1537 x 1537; weights 384 x n)
    per_layer = 8 * (2 * 385**2 + 384 * 385 + 2 * 1537**2 + 384 * 1537)
    assert resident == 6 * per_layer
    assert work == 8 * (3 * 1537**2 + 384 * 1537)  # the FFN projection's greedy pass


@pytest.mark.parametrize("family", ["bert", "distilbert", "deberta-v2", "modernbert"])
def test_the_state_is_the_workers_on_a_real_model(family: str) -> None:
    """What StructuredCalibration holds once its levels are computed (X^T X, H and the
    working weights of every estimator), exactly where the projections have a bias and
    counted with one where they have not (ModernBERT)."""
    torch = pytest.importorskip("torch")
    import transformers

    from tests.factories.encoder_configs import tiny_config
    from worker.pipelines.structured_calibrate import StructuredCalibration

    cfg = tiny_config(family)
    model = transformers.AutoModel.from_config(cfg)
    calibration = StructuredCalibration(model, device=torch.device("cpu"))
    ids = torch.randint(5, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    calibration.add_batch({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    calibration.levels()
    held = sum(t.numel() * t.element_size()
               for obs in (*calibration.heads, *calibration.neurons)
               for t in (obs._weight, obs._xtx, obs._h) if t is not None)  # fmt: skip
    resident, _ = je.structured_state(je.Shape.of(cfg.to_dict()))
    biased = all(obs.has_bias for obs in (*calibration.heads, *calibration.neurons))
    assert resident == held if biased else resident > held
    calibration.free()


def test_a_structured_job_has_a_calibration_phase_and_no_obert_one() -> None:
    phases = je.memory_phases(job(), MINILM)
    assert PHASE in phases and "oBERT pruning step" not in phases
    parts = phases[PHASE]
    state = part(parts, "structured OBS state")
    assert state.bytes == je.structured_state(je.Shape.of(MINILM))[0]
    assert state.field == "layers.keep"
    assert part(parts, "calibration forward").field == "training.batch_size"
    # each step's recovery is a training run of its own: no optimizer state at calibration
    assert part(parts, "the student's weights").bytes == je.Shape.of(MINILM).params() * 4
    assert not any("AdamW" in p.what for p in parts)
    other = je.memory_phases(job(**{"pruning": {"method": "magnitude"}}), MINILM)
    assert PHASE not in other


@pytest.mark.parametrize(
    "bigger", [{"intermediate_size": 3072}, {"num_hidden_layers": 12}], ids=["ffn", "layers"]
)
def test_memory_and_time_grow_with_the_ffn_and_the_layers(bigger: dict[str, int]) -> None:
    small = je.estimate(job(), MINILM, SST2, 4.3e10)
    large = je.estimate(job(), config(**bigger), SST2, 4.3e10)
    small_state = part(je.memory_phases(job(), MINILM)[PHASE], "structured OBS state").bytes
    large_state = part(je.memory_phases(job(), config(**bigger))[PHASE],
                       "structured OBS state").bytes  # fmt: skip
    assert large_state > small_state
    for term in ("structured calibration", "structured OBS passes"):
        assert large.steps[term] > small.steps[term], term
    assert large.seconds > small.seconds
    # the greedy pass is cubic in the FFN width, linear in the layers
    ratio = large.steps["structured OBS passes"] / small.steps["structured OBS passes"]
    assert ratio > 6 if "intermediate_size" in bigger else ratio == pytest.approx(2.0)


def test_time_terms_follow_the_steps_and_the_calibration_batches() -> None:
    base = je.estimate(job(), MINILM, SST2, 4.3e10).steps
    one = je.estimate(job({"steps": 1}), MINILM, SST2, 4.3e10).steps
    more = je.estimate(job({"calibration_batches": 64}), MINILM, SST2, 4.3e10).steps
    assert base["structured OBS passes"] == pytest.approx(3 * one["structured OBS passes"])
    assert base["structured calibration"] == pytest.approx(3 * one["structured calibration"])
    assert more["structured calibration"] == pytest.approx(4 * base["structured calibration"])
    assert more["structured OBS passes"] == base["structured OBS passes"]
    assert one["evaluation"] < base["evaluation"]  # an evaluation after each step
    assert je.pruning_steps(job({"steps": 5}), 100) == 5


def test_the_greedy_pass_formula() -> None:
    """structured_flops: per projection 2 in n^2 + 4 in out n + n^3, times GREEDY_COST."""
    shape = je.Shape.of(MINILM)
    _, greedy = je.structured_flops(shape, 1, 35)

    def one(out: int, inp: int) -> float:
        n = inp + 1
        return 2.0 * inp * n * n + 4.0 * inp * out * n + n**3

    assert greedy == pytest.approx(je.GREEDY_COST * 6 * (one(384, 384) + one(384, 1536)))
    calibration, _ = je.structured_flops(shape, 1000, 35)
    xtx = 6 * 2.0 * (385**2 + 1537**2)
    assert calibration == pytest.approx(1000 * (shape.forward_flops_per_token(35) + xtx))


def test_a_wide_model_over_the_budget_names_layers_keep() -> None:
    # 24 layers of FFN 16,384: the calibration's X^T X and H are 100 GiB
    wide = config(hidden_size=1024, intermediate_size=16384, num_hidden_layers=24,
                  num_attention_heads=16)  # fmt: skip
    with pytest.raises(Unprocessable) as info:
        check_estimate(job(), wide, SST2, Limits.of(Settings()))
    err = info.value
    assert (err.code, err.field) == ("memory_budget_exceeded", "layers.keep")
    assert PHASE in (err.detail or "") and "structured OBS state" in (err.detail or "")
