"""Write the compressed model (HF directory), the int8 model and their archives.

`model.tar.gz` holds an HF directory at the archive root: config.json, model.safetensors and
the tokenizer files; the class its config names (`architectures`: BertForSequenceClassification,
RobertaForTokenClassification, ModernBertForQuestionAnswering, ...: any family of the
architecture table) loads it with `from_pretrained(dir)`.
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
DEFAULT_AUTO_CLASS = "AutoModelForSequenceClassification"


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
            "config = AutoConfig.from_pretrained(dir); skeleton = getattr(transformers, "
            "config.architectures[0])(config); "
            "worker.compression.load_int8_state_dict(skeleton, "
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


def model_class(config: Any, auto_class: str = DEFAULT_AUTO_CLASS) -> Any:
    """The transformers class a saved config names (`architectures`: BertForQuestionAnswering,
    ModernBertForTokenClassification, ...), so a saved model comes back with the head it was
    saved with; when it names none transformers has, the class `auto_class` (the task's Auto
    class) maps the config's family to."""
    import transformers

    archs = list(getattr(config, "architectures", None) or [])
    cls = getattr(transformers, str(archs[0]), None) if archs else None
    if cls is not None:
        return cls
    auto = getattr(transformers, auto_class)
    try:
        return auto._model_mapping[type(config)]
    except KeyError as e:
        raise ValueError(
            f"{auto_class} has no class for model_type {getattr(config, 'model_type', None)!r}"
        ) from e


def load_hf_dir(folder: Path, auto_class: str = DEFAULT_AUTO_CLASS) -> nn.Module:
    """A saved model directory back as the task model it was saved as, in eval mode."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(folder))
    model: nn.Module = model_class(config, auto_class).from_pretrained(str(folder)).eval()
    return model


def load_int8_dir(folder: Path, auto_class: str = DEFAULT_AUTO_CLASS) -> nn.Module:
    """Load a `model-int8` directory back into a dynamically quantized model."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    from worker.compression import load_int8_state_dict

    config = AutoConfig.from_pretrained(str(folder))
    skeleton = model_class(config, auto_class)(config)
    qmodel: nn.Module = load_int8_state_dict(skeleton, load_file(str(folder / INT8_WEIGHTS)))
    return qmodel
