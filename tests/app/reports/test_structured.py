"""The report's `structured` section of every shape the worker has written: the first one
(7ef8c49: no latency model measurements, no planning), the next (cebb9e3: the dense and the
student graphs measured, no `block_scale`), a job resumed from a step checkpoint of the first
shape (old steps beside planned ones), and the current one, whose planning keys are declared
(typed), not carried as extras."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from app.reports import Report, StructuredSection
from tests.factories.reports import report_json, structured_section

KEY = {"cpu": "AMD EPYC", "int8_instructions": ["avx2"], "hidden": 32, "heads": 2, "ffn": 64,
       "gated": False, "activation": "gelu", "batch": 1, "seq_len": 16, "threads": 1,
       "precision": "fp32", "runtime": "onnxruntime-cpu"}  # fmt: skip


def first_shape() -> dict[str, Any]:
    """The section as 7ef8c49 wrote it: stages.structured.new_record (the options, the step
    targets, the table, a latency model of `layers, dense_ms, fixed_ms, fixed_part,
    best_speedup`), its prune_step rows (and train_step, recovery_steps), final_summary, and
    structured_plan.report_section (measured_speedup, measured_over_predicted)."""
    blocks = {"counts": [0, 1, 2], "raw": [0.0, 1e-4, 2e-4], "monotone": [0.0, 1e-4, 2e-4]}
    record: dict[str, Any] = {
        "target_speedup": 1.5, "runtime": "onnxruntime-cpu", "steps": 2,
        "calibration_batches": 2, "damp": 0.01, "latency_batch_size": 1,
        "step_targets": [1.5**0.5, 1.5],
        "latency_table": {"version": 3, "key": KEY, "attention": blocks, "ffn": blocks,
                          "rest": 1e-4, "rounds": 2, "iters": 2},
        "latency_model": {"layers": 2, "dense_ms": 1.2, "fixed_ms": 0.3,
                          "fixed_part": "embeddings and task head taken as one layer's `rest`",
                          "best_speedup": None},
        "per_step": [old_step(1, 1.5**0.5, 0), old_step(2, 1.5, 3)],
    }  # fmt: skip
    record["final"] = {
        "kept_heads": [2, 1], "kept_neurons": [32, 24], "kept_head_indices": [[0, 1], [1]],
        "heads": 4, "heads_kept": 3, "neurons": 128, "neurons_kept": 56,
        "predicted_latency_ms": 0.79, "predicted_speedup": 1.52, "removed_parameters": 5000,
        "total_parameters": 1000000, "fraction_removed": 0.005,
    }  # fmt: skip
    return {**record, "measured_speedup": None, "measured_over_predicted": None}


def old_step(k: int, target: float, at: int) -> dict[str, Any]:
    """A step row as 7ef8c49's prune_step wrote it, with the stage's train_step and
    recovery_steps."""
    return {
        "step": k, "target_speedup": target, "calibration_tokens": 256,
        "calibration_batches": 2, "kept_heads": [2, 1], "kept_neurons": [48 - 16 * (k - 1), 40],
        "kept_head_indices": [[0, 1], [1]], "loss": 0.01, "predicted_latency_ms": 0.9,
        "predicted_speedup": 1.3, "sparsity": 0.2, "train_step": at, "recovery_steps": 3,
    }  # fmt: skip


def second_shape() -> dict[str, Any]:
    """cebb9e3: the dense and the student graphs timed, neither the minimal nor the scale."""
    st = first_shape()
    st["latency_model"] |= {"measured_dense_ms": 1.2, "measured_student_ms": 1.2}
    return st


def with_section(section: dict[str, Any]) -> dict[str, Any]:
    data = report_json(structured=True)
    data["structured"] = section
    return data


@pytest.mark.parametrize("shape", [first_shape, second_shape])
def test_a_section_of_an_earlier_shape_loads_and_dumps_as_written(shape: Any) -> None:
    data = with_section(shape())
    report = Report.model_validate(data)
    st = report.structured
    assert st is not None and st.latency_model.block_scale is None
    assert st.latency_model.measured_minimal_ms is None and st.plan_measurement is None
    assert st.plan_rounds == [] and st.plan_measured_speedup is None
    assert all(row.plan_rounds == [] and row.plan_measured_speedup is None for row in st.per_step)
    assert st.final.plan_measured_speedup is None
    assert report.model_dump(mode="json") == data  # nothing added on the way back


def test_a_job_resumed_from_a_first_shape_checkpoint_loads() -> None:
    """Step 1 from a 7ef8c49 checkpoint, step 2 planned by the current stage: the record the
    resumed job reports (report_section adds the planning keys; the latency model stays the
    checkpoint's)."""
    current = structured_section()
    section = first_shape()
    section["per_step"][1] = current["per_step"][1]
    section["final"]["plan_measured_speedup"] = 1.45
    section |= {"plan_measured_speedup": 1.45, "measured_speedup": 1.4,
                "measured_over_predicted": 1.4 / 1.52, "measured_over_plan": 1.4 / 1.45,
                "plan_rounds": [r for r in current["plan_rounds"] if r["step"] == 2]}  # fmt: skip
    st = StructuredSection.model_validate(section)
    assert st.per_step[0].plan_round is None and st.per_step[1].plan_round == 2
    assert [r.measured_speedup for r in st.per_step[1].plan_rounds] == [1.3, 1.45]
    assert st.model_dump(mode="json") == section


def test_the_planning_keys_are_declared_and_typed() -> None:
    data = report_json(structured=True)
    st = Report.model_validate(data).structured
    assert st is not None
    assert st.model_extra == {} and st.final.model_extra == {}
    assert all(row.model_extra == {} for row in st.per_step)
    assert all(r.model_extra == {} for row in st.per_step for r in row.plan_rounds)
    assert st.plan_measured_speedup == 1.45 and st.measured_over_plan == pytest.approx(1.4 / 1.45)
    assert st.plan_measurement is not None and st.plan_measurement.max_rounds == 4
    step = st.per_step[1]
    assert (step.plan_round, step.plan_met, step.plan_stopped) == (2, True, "within_tolerance")
    assert [r.chosen for r in step.plan_rounds] == [False, True]
    assert [(r.step, r.round) for r in st.plan_rounds] == [(1, 1), (2, 1), (2, 2)]
    for path in (("plan_measured_speedup",), ("per_step", 0, "plan_round"),
                 ("per_step", 1, "plan_rounds", 0, "measured_speedup"),
                 ("plan_rounds", 2, "chosen"), ("final", "plan_measured_speedup"),
                 ("plan_measurement", "tolerance")):  # fmt: skip
        broken = copy.deepcopy(data)
        node = broken["structured"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = "fast"
        with pytest.raises(ValidationError):
            Report.model_validate(broken)
