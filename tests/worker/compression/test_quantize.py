"""Dynamic int8 quantization and its safetensors round trip."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

from tests.worker.compression.conftest import tiny_bert
from worker.compression import int8_state_dict, load_int8_state_dict, quantize_dynamic_int8


def test_int8_round_trip_through_safetensors(tmp_path: Path) -> None:
    model = tiny_bert().eval()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    qmodel = quantize_dynamic_int8(model)
    assert any(isinstance(m, DynamicQuantizedLinear) for m in qmodel.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in original.items())

    sd = int8_state_dict(qmodel)
    name = "bert.encoder.layer.0.attention.self.query"
    assert sd[name + ".weight"].dtype == torch.int8
    assert sd[name + ".weight_scale"].dtype == torch.float64
    path = tmp_path / "model.safetensors"
    save_file(sd, str(path))
    loaded = load_int8_state_dict(tiny_bert(seed=99), load_file(str(path)))

    ids = torch.randint(1, 60, (3, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = qmodel(input_ids=ids).logits
        got = loaded(input_ids=ids).logits
        dense = model(input_ids=ids).logits
    assert torch.equal(expected, got)
    assert torch.allclose(dense, got, atol=0.1)  # quantized, close to the fp32 model
