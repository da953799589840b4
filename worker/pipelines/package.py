"""Write the compressed model (HF directory), the int8 model and their archives.

`model.tar.gz` holds an HF directory at the archive root: config.json, model.safetensors and
the tokenizer files; `AutoModelForSequenceClassification.from_pretrained(dir)` loads it.
`model-int8.tar.gz` holds config.json, the tokenizer, `model.int8.safetensors`
(`worker.compression.int8_state_dict`) and `quantization.json` saying how to load it.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

INT8_WEIGHTS = "model.int8.safetensors"


def save_hf_dir(model: nn.Module, tokenizer: Any, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(dest))  # type: ignore[operator]  # safetensors by default
    tokenizer.save_pretrained(str(dest))
    return dest


def weights_file(folder: Path) -> Path:
    path = folder / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no model.safetensors in {folder}")
    return path


def save_int8_dir(
    qmodel: nn.Module,
    fp32_model: nn.Module,
    tokenizer: Any,
    dest: Path,
    *,
    method: str = "dynamic_int8",
) -> Path:
    from safetensors.torch import save_file

    from worker.compression import int8_state_dict

    dest.mkdir(parents=True, exist_ok=True)
    fp32_model.config.save_pretrained(str(dest))  # type: ignore[operator, union-attr]
    tokenizer.save_pretrained(str(dest))
    save_file(int8_state_dict(qmodel), str(dest / INT8_WEIGHTS))
    info = {
        "method": method,
        "weights": INT8_WEIGHTS,
        "dtype": "qint8",
        "scheme": "per_channel_symmetric" if method == "qat_int8" else "per_tensor_affine",
        "modules": ["torch.nn.Linear"],
        "activations": "quantized dynamically at run time (fp32 in and out)",
        "torch_version": torch.__version__,
        "load": (
            "skeleton = AutoModelForSequenceClassification.from_config(AutoConfig."
            "from_pretrained(dir)); worker.compression.load_int8_state_dict(skeleton, "
            f"safetensors.torch.load_file(dir / '{INT8_WEIGHTS}'))"
        ),
    }
    (dest / "quantization.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return dest


def make_tar_gz(folder: Path, dest: Path) -> Path:
    """Archive the folder's files at the archive root (sorted, owner-neutral)."""

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(dest, "w:gz", compresslevel=6) as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(folder)), filter=clean)
    return dest


def load_int8_dir(folder: Path) -> nn.Module:
    """Load a `model-int8` directory back into a dynamically quantized model."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from worker.compression import load_int8_state_dict

    config = AutoConfig.from_pretrained(str(folder))
    skeleton = AutoModelForSequenceClassification.from_config(config)  # type: ignore[no-untyped-call]
    qmodel: nn.Module = load_int8_state_dict(skeleton, load_file(str(folder / INT8_WEIGHTS)))
    return qmodel
