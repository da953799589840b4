from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from tests.factories.tiny_bert import sentiment_rows
from worker.compression import MagnitudeConfig, hold_masks, prune
from worker.pipelines.architecture import prunable_targets
from worker.pipelines.data import Example
from worker.pipelines.tasks.classification import TASK as CLASSIFICATION
from worker.pipelines.telemetry import StepSample
from worker.pipelines.train import (
    DistillConfig,
    HoldMask,
    TrainConfig,
    TrainProgress,
    linear_schedule,
    rewinding_schedule,
    total_steps,
    train,
)

CPU = torch.device("cpu")


def examples(n: int, seed: int = 0) -> list[Example]:
    return [Example(t, None, y) for t, y in sentiment_rows(n, seed)]


def test_kd_loss_matches_hand_computation() -> None:
    s = torch.tensor([[1.0, -0.5, 0.2], [0.3, 0.1, -1.0]])
    t = torch.tensor([[0.5, 0.0, 1.5], [-0.2, 2.0, 0.4]])
    y = torch.tensor([2, 0])
    h, temp = 0.7, 3.0
    ce = 0.0
    kl = 0.0
    for i in range(2):
        ps = [math.exp(v) for v in s[i].tolist()]
        ce += -math.log(ps[y[i]] / sum(ps)) / 2
        qs = [math.exp(v / temp) for v in s[i].tolist()]
        qt = [math.exp(v / temp) for v in t[i].tolist()]
        qs = [q / sum(qs) for q in qs]
        qt = [q / sum(qt) for q in qt]
        kl += sum(pt * math.log(pt / ps_) for pt, ps_ in zip(qt, qs, strict=True)) / 2
    expected = (1 - h) * ce + h * temp**2 * kl

    def kd(hardness: float) -> float:
        batch = {"labels": y}
        loss = CLASSIFICATION.distill_loss(
            {"logits": s}, {"logits": t}, batch, hardness=hardness, temperature=temp
        )
        return float(loss)

    assert abs(kd(h) - expected) < 1e-5
    assert abs(kd(0.0) - float(F.cross_entropy(s, y))) < 1e-6
    assert abs(kd(1.0) - temp**2 * kl) < 1e-5


def test_linear_schedule_and_steps() -> None:
    f = linear_schedule(2, 10)
    assert [round(f(i), 3) for i in (0, 1, 2, 6, 10)] == [0.5, 1.0, 1.0, 0.5, 0.0]
    assert total_steps(33, TrainConfig(epochs=2, batch_size=16)) == 6
    assert total_steps(33, TrainConfig(epochs=0.5, batch_size=16, max_steps=4)) == 4


def test_training_learns_and_is_seeded(tiny_bert_dir: Any, tokenizer: Any) -> None:
    from transformers import AutoModelForSequenceClassification

    def run() -> tuple[float, torch.Tensor]:
        model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir))
        steps: list[int] = []
        res = train(
            model,
            tokenizer,
            examples(32),
            TrainConfig(max_steps=6, batch_size=8, learning_rate=1e-3, seed=3, max_length=16),
            CPU,
            on_step=lambda d, t: steps.append(d),
        )
        assert steps == [1, 2, 3, 4, 5, 6] and res.steps == 6
        return res.last_loss, model.classifier.weight.detach().clone()

    a, b = run(), run()
    assert a[0] == b[0] and torch.equal(a[1], b[1])


def test_mask_held_through_training_with_weight_decay(tiny_model: Any, tokenizer: Any) -> None:
    targets = prunable_targets(tiny_model)
    masks = prune(MagnitudeConfig(), targets, 0.6, device=CPU)
    hold = hold_masks(targets, masks)
    cfg = TrainConfig(
        max_steps=5, batch_size=8, learning_rate=1e-2, weight_decay=0.1, max_length=16
    )
    train(tiny_model, tokenizer, examples(40), cfg, CPU, callbacks=[HoldMask(hold)])
    for name, lin in targets.items():
        assert torch.all(lin.weight[~masks[name]] == 0), name
        assert torch.any(lin.weight[masks[name]] != 0)
    hold.remove()


def test_distillation_training_runs(tiny_bert_dir: Any, tokenizer: Any) -> None:
    from transformers import AutoModelForSequenceClassification

    teacher = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir))
    student = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    res = train(
        student,
        tokenizer,
        examples(16),
        TrainConfig(max_steps=2, batch_size=8, max_length=16),
        CPU,
        teacher=teacher,
        distill=DistillConfig(0.5, 2.0),
    )
    assert res.steps == 2 and math.isfinite(res.last_loss)
    assert not teacher.training
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


def _hidden_error(student: Any, teacher: Any, tokenizer: Any, items: list[Example]) -> float:
    from worker.compression.distill import hidden_distillation_loss

    batch = tokenizer([e.text for e in items], padding=True, return_tensors="pt")
    with torch.no_grad():
        s = student(**batch, output_hidden_states=True).hidden_states
        t = teacher(**batch, output_hidden_states=True).hidden_states
    n = len(s) - 1
    return float(hidden_distillation_loss(s, t, batch["attention_mask"], list(range(n))))


def test_token_level_distillation_pulls_the_hidden_states_to_the_teachers(
    tiny_bert_dir: Any, tokenizer: Any
) -> None:
    from transformers import AutoModelForSequenceClassification

    teacher = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir)).eval()
    items, errors = examples(32), {}
    for weight in (0.0, 5.0):
        student = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir))
        with torch.no_grad():  # a student away from its teacher: its encoder perturbed
            g = torch.Generator().manual_seed(1)
            for name, p in student.named_parameters():
                if "encoder" in name and name.endswith("dense.weight"):
                    p.add_(2.0 * p.std() * torch.randn(p.shape, generator=g))
        start = _hidden_error(student, teacher, tokenizer, items)
        cfg = TrainConfig(max_steps=8, batch_size=8, learning_rate=3e-3, max_length=16)
        dist = DistillConfig(1.0, 2.0, hidden_weight=weight)
        res = train(student, tokenizer, items, cfg, CPU, teacher=teacher, distill=dist)
        assert res.steps == 8 and math.isfinite(res.last_loss)
        errors[weight] = _hidden_error(student, teacher, tokenizer, items)
        assert start > 1e-3
    assert errors[5.0] < 0.5 * errors[0.0]  # the token-level term closes the hidden gap


def test_a_dropped_layer_student_is_distilled_against_the_layers_it_kept(
    tiny_bert_dir: Any, tokenizer: Any
) -> None:
    from transformers import AutoModelForSequenceClassification

    from worker.pipelines.layers import drop_layers

    teacher = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir)).eval()
    student, kept = drop_layers(teacher, 1)
    cfg = TrainConfig(max_steps=2, batch_size=8, max_length=16)
    dist = DistillConfig(1.0, 2.0, hidden_weight=1.0, kept_layers=tuple(kept))
    assert train(student, tokenizer, examples(16), cfg, CPU, teacher=teacher, distill=dist).steps
    with pytest.raises(ValueError, match="needs the kept layers"):
        bad = DistillConfig(1.0, 2.0, hidden_weight=1.0)
        train(drop_layers(teacher, 1)[0], tokenizer, examples(16), cfg, CPU, teacher=teacher,
              distill=bad)  # fmt: skip


def test_rewinding_schedule_restarts_at_each_pruning_step() -> None:
    f = rewinding_schedule(0, 100, [0, 25, 50, 75])
    assert [f(s) for s in (0, 12, 24)] == [1.0, (25 - 12) / 25, 1 / 25]
    assert f(25) == 1.0 and f(50) == 1.0 and f(75) == 1.0  # back to the full rate
    assert f(62) == (75 - 62) / 25
    assert f(99) == 1 / 25 and f(100) == 0.0  # the recovery after the last step decays to 0
    # No restart inside the run: the plain linear schedule (with its warmup).
    g, plain = rewinding_schedule(10, 100, [0, 100]), linear_schedule(10, 100)
    assert [g(s) for s in range(100)] == [plain(s) for s in range(100)]
    # Before the first restart: warmup then decay over that first segment.
    h = rewinding_schedule(4, 40, [20, 30])
    assert h(0) == 0.25 and h(3) == 1.0 and h(19) == (20 - 19) / 16 and h(20) == 1.0


def test_training_rewinds_the_learning_rate_at_the_given_steps(
    tiny_model: Any, tokenizer: Any
) -> None:
    """The rate each optimizer step used: full at steps 0, 3 and 6, decaying in between."""
    progress = TrainProgress()
    used: list[float] = []

    def record(_done: int, _total: int) -> None:
        assert progress.optimizer is not None
        used.append(progress.optimizer.param_groups[0]["lr"])

    cfg = TrainConfig(max_steps=8, batch_size=4, learning_rate=1e-3, max_length=16)
    # on_step runs after the scheduler stepped: it sees the rate of the next step.
    train(tiny_model, tokenizer, examples(40), cfg, CPU, on_step=record, progress=progress,
          lr_restarts=[3, 6])  # fmt: skip
    expected = [1e-3 * rewinding_schedule(0, 8, [3, 6])(s) for s in range(1, 9)]
    assert used == pytest.approx(expected)
    assert used[2] == pytest.approx(1e-3) and used[5] == pytest.approx(1e-3)  # steps 3, 6
    assert used[1] < used[0] and used[-1] == 0.0


def test_telemetry_gets_each_steps_loss_rate_and_batch(tiny_model: Any, tokenizer: Any) -> None:
    """The rate a step used (the schedule at that step, not the next), its loss (the last is
    the result's) and its batch, the last one short; before on_step."""
    samples: list[StepSample] = []
    order: list[str] = []

    def telemetry(s: StepSample) -> None:
        samples.append(s)
        order.append("telemetry")

    cfg = TrainConfig(max_steps=4, batch_size=8, learning_rate=1e-3, warmup_ratio=0.5,
                      max_length=16)  # fmt: skip
    res = train(tiny_model, tokenizer, examples(12), cfg, CPU, telemetry=telemetry,
                on_step=lambda d, t: order.append("on_step"))  # fmt: skip
    assert [(s.step, s.total) for s in samples] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    schedule = linear_schedule(2, 4)
    assert [s.learning_rate for s in samples] == pytest.approx(
        [1e-3 * schedule(i) for i in range(4)]
    )
    assert [s.examples for s in samples] == [8, 4, 8, 4]  # 12 examples an epoch
    assert all(math.isfinite(s.loss) for s in samples) and samples[-1].loss == res.last_loss
    assert order == ["telemetry", "on_step"] * 4
