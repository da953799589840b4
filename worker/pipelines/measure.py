"""Measurements for the report: parameters, file sizes (raw and gzip), CPU latency."""

from __future__ import annotations

import gzip
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

MB = 1024 * 1024


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def file_sizes_mb(path: Path) -> dict[str, float]:
    """Raw size and gzip (level 6) size of one file, in MiB."""
    raw = path.stat().st_size
    with tempfile.TemporaryFile() as tmp:
        with (
            path.open("rb") as src,
            gzip.GzipFile(fileobj=tmp, mode="wb", compresslevel=6, mtime=0) as gz,
        ):
            shutil.copyfileobj(src, gz, 1024 * 1024)
        gz_size = tmp.tell()
    return {"raw_mb": round(raw / MB, 4), "gzip_mb": round(gz_size / MB, 4)}


def dummy_inputs(
    tokenizer: Any, batch_size: int, max_length: int, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Full-length rows of random ordinary tokens (worst case for padding)."""
    g = torch.Generator().manual_seed(seed)
    vocab = int(getattr(tokenizer, "vocab_size", 1000))
    low = min(1000, max(0, vocab - 1))
    ids = torch.randint(low, vocab, (batch_size, max_length), generator=g)
    if tokenizer.cls_token_id is not None and tokenizer.sep_token_id is not None:
        ids[:, 0] = tokenizer.cls_token_id
        ids[:, -1] = tokenizer.sep_token_id
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": torch.zeros_like(ids),
    }
    names = set(getattr(tokenizer, "model_input_names", None) or inputs)
    return {k: v for k, v in inputs.items() if k in names or k == "input_ids"}


@torch.no_grad()
def latency_ms(
    model: nn.Module,
    tokenizer: Any,
    *,
    batch_size: int,
    max_length: int,
    warmup: int = 2,
    iters: int = 5,
    threads: int | None = None,
) -> float:
    """Median wall time of one forward pass on CPU, in milliseconds."""
    model.eval()
    inputs = dummy_inputs(tokenizer, batch_size, max_length)
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        for _ in range(warmup):
            model(**inputs)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            model(**inputs)
            times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        torch.set_num_threads(old_threads)
    return round(statistics.median(times), 3)


def cpu_latencies(
    model: nn.Module,
    tokenizer: Any,
    max_length: int,
    *,
    iters_b1: int = 5,
    iters_b32: int = 2,
) -> dict[str, float]:
    """Batch 1 and batch 32 at max_length; the model must already be on the CPU."""
    return {
        "batch_1_ms": latency_ms(
            model, tokenizer, batch_size=1, max_length=max_length, warmup=2, iters=iters_b1
        ),
        "batch_32_ms": latency_ms(
            model, tokenizer, batch_size=32, max_length=max_length, warmup=1, iters=iters_b32
        ),
    }
