"""Benchmark: the STS-B baseline of the pretrained all-MiniLM-L6-v2 sentence embeddings (no
training): Spearman and Pearson correlation of the cosine similarity of the mean-pooled,
L2-normalised embeddings of each pair with the gold score, on the STS-B dev split. The
reference point for the regression (cross-encoder) lines of bench/recipe.py --task regression.

Usage: ``python bench/stsb_embeddings.py --out bench/results``; one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import data_dir, machine, minilm_path, result_name


def embed(model: torch.nn.Module, tokenizer: object, texts: list[str], batch: int) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            enc = tokenizer(texts[i : i + batch], padding=True, truncation=True,  # type: ignore[operator]
                            max_length=128, return_tensors="pt")  # fmt: skip
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from scipy import stats
    from transformers import AutoModel, AutoTokenizer

    from app.schemas.job_spec import DatasetSpec
    from worker.pipelines.tasks.regression import load_stsb

    dev = load_stsb(DatasetSpec(name="stsb"), data_dir()).dev
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    model = AutoModel.from_pretrained(minilm_path()).eval()
    start = time.monotonic()
    a = embed(model, tokenizer, [ex.text for ex in dev], 64)
    b = embed(model, tokenizer, [ex.text_pair or "" for ex in dev], 64)
    cosine = (a * b).sum(-1).numpy()
    gold = [ex.score for ex in dev]
    line = {
        "config": "minilm-l6-embeddings-cosine",
        "task": "regression",
        "dataset": "stsb",
        "split": "dev",
        "examples": len(dev),
        "spearman": float(stats.spearmanr(cosine, gold).statistic),
        "pearson": float(stats.pearsonr(cosine, gold).statistic),
        "pooling": "mean over real tokens, L2-normalised; max_length 128",
        "seconds": round(time.monotonic() - start, 1),
        "machine": machine(),
    }
    text = json.dumps(line)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / result_name("stsb_embeddings")).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
