"""The loss normalisation the allocation compares modules by (StructuredSpec.normalize_loss_by)."""

from __future__ import annotations

import pytest
import torch

from app.schemas.pruning_spec import LossNorm
from worker.compression.allocation import LayerOption, allocate
from worker.compression.structured import StructuredLevels
from worker.pipelines.structured_plan import normalised


def levels(loss: list[float], energy: float) -> StructuredLevels:
    return StructuredLevels(
        loss=torch.tensor(loss, dtype=torch.float64),
        order=torch.arange(len(loss) - 1),
        samples=10,
        output_energy=energy,
    )


def test_output_divides_by_the_modules_output_energy_and_stream_by_the_stream() -> None:
    lv = levels([8.0, 2.0, 0.0], energy=4.0)
    assert normalised(lv, 100.0, "output") == [2.0, 0.5, 0.0]
    assert normalised(lv, 100.0, "stream") == pytest.approx([0.08, 0.02, 0.0])
    assert normalised(lv, 0.0, "stream") == [2.0, 0.5, 0.0]  # no stream seen: as output


def test_stream_lets_a_module_small_beside_the_stream_go_first() -> None:
    # Two modules writing into the same stream (energy 100): a loud one (output energy 50,
    # losing it all costs 50) and a quiet one (output energy 1, costs 1). Each relative to
    # its own output, both cost 1 when removed and the allocation cannot tell them apart;
    # against the stream the quiet one is the cheap one.
    loud, quiet = levels([50.0, 0.0], 50.0), levels([1.0, 0.0], 1.0)

    def removed(by: LossNorm) -> list[int]:
        options = [
            [LayerOption(k, x, latency=float(k)) for k, x in enumerate(normalised(m, 100.0, by))]
            for m in (loud, quiet)
        ]
        return [i for i, k in enumerate(allocate(options, budget=1.0).kept) if k == 0]

    assert normalised(loud, 100.0, "output") == normalised(quiet, 100.0, "output")
    assert removed("stream") == [1]
