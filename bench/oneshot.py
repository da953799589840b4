"""Benchmark: one-shot pruning of a fine-tuned MiniLM-L6 on SST-2, magnitude vs oBERT.

Fine-tunes MiniLM-L6 (all-MiniLM-L6-v2 weights, a fresh 2-way head) on SST-2 once and caches
the dense model under ``bench/.cache/``; then, from that dense model each time, prunes the
encoder's 36 Linear weight matrices one-shot (global, unstructured, no fine-tuning after) to
each sparsity with global magnitude and with oBERT (r = 1 and r = 8 recomputations; at the
highest sparsity over several gradient seeds, i.e. different random training examples in the
m mini-batches), and reports SST-2 dev accuracy. Results are printed as they complete; the
last line printed is one JSON object with ``dense_accuracy`` and ``results``.

Usage: ``python bench/oneshot.py`` (full), or a smoke run:
``python bench/oneshot.py --train-steps 4 --grads 4 --dev-examples 64 --sparsities 0.5
--recomputations 1 2 --seeds 1``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CACHE,
    batches_of,
    hf_loss,
    load_minilm,
    machine,
    minilm_path,
    read_sst2,
    tokenize,
    warmup_linear,
)
from worker.compression import (
    GradientSource,
    MagnitudeConfig,
    OBertConfig,
    PruningConfig,
    prune,
    sparsity_of,
)
from worker.pipelines.architecture import prunable_targets


def fine_tune(args: argparse.Namespace, path: str) -> tuple[nn.Module, Path]:
    name = f"minilm-sst2-dense-s{args.train_steps}-b{args.batch_size}-l{args.max_length}"
    name += f"-lr{args.lr:g}-seed{args.seed}"
    out = CACHE / name
    if (out / "config.json").exists():
        from transformers import AutoModelForSequenceClassification

        print(f"dense model from cache {out}", flush=True)
        model: nn.Module = AutoModelForSequenceClassification.from_pretrained(str(out))
        return model, out
    model = load_minilm(path, seed=args.seed)
    sentences, labels = read_sst2("train")
    data = tokenize(sentences, labels, args.max_length, path)
    gen = torch.Generator().manual_seed(args.seed)
    n = data["labels"].shape[0]
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = warmup_linear(opt, args.train_steps)
    model.train()
    order = torch.randperm(n, generator=gen)
    pos = 0
    start = time.perf_counter()
    for step in range(args.train_steps):
        if pos + args.batch_size > n:
            order = torch.randperm(n, generator=gen)
            pos = 0
        idx = order[pos : pos + args.batch_size]
        pos += args.batch_size
        loss = hf_loss(model, {k: v[idx] for k, v in data.items()})
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == args.train_steps - 1:
            print(
                f"fine-tune step {step}/{args.train_steps} loss {loss.item():.4f} "
                f"({time.perf_counter() - start:.0f}s)",
                flush=True,
            )
    model.eval()
    if args.train_steps >= 100:  # smoke runs do not pollute the cache
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out), safe_serialization=True)
    return model, out


@torch.no_grad()
def accuracy(model: nn.Module, dev: dict[str, Tensor], batch: int = 64) -> float:
    model.eval()
    correct = 0
    for b in batches_of(dev, batch):
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        correct += int((logits.argmax(dim=-1) == b["labels"]).sum())
    return correct / dev["labels"].shape[0]


def gradient_batches(
    train: dict[str, Tensor], m: int, batch: int, seed: int
) -> list[dict[str, Tensor]]:
    gen = torch.Generator().manual_seed(1000 + seed)
    idx = torch.randperm(train["labels"].shape[0], generator=gen)[: m * batch]
    picked = {k: v[idx] for k, v in train.items()}
    return batches_of(picked, batch)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--train-steps", type=int, default=1100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8])
    p.add_argument("--recomputations", type=int, nargs="+", default=[1, 8])
    p.add_argument("--grads", type=int, default=256, help="m, mini-batch gradients")
    p.add_argument("--grad-batch", type=int, default=16)
    p.add_argument("--block-size", type=int, default=50)
    p.add_argument("--damp", type=float, default=1e-7)
    p.add_argument("--update", choices=["joint", "independent"], default="independent")
    p.add_argument("--seeds", type=int, default=3, help="gradient seeds at the top sparsity")
    p.add_argument("--dev-examples", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="also write the final JSON here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    info = machine()
    print(f"machine: {info}", flush=True)
    path = minilm_path()
    model, dense_dir = fine_tune(args, path)
    dense_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sentences, labels = read_sst2("dev")
    if args.dev_examples is not None:
        sentences, labels = sentences[: args.dev_examples], labels[: args.dev_examples]
    dev = tokenize(sentences, labels, args.max_length, path)
    dense_acc = accuracy(model, dev)
    print(f"dense accuracy {dense_acc:.4f} on {len(labels)} dev examples", flush=True)
    tr_sentences, tr_labels = read_sst2("train")
    train = tokenize(tr_sentences, tr_labels, args.max_length, path)

    top = max(args.sparsities)
    runs: list[tuple[str, float, int, int]] = []
    runs += [("magnitude", s, 0, 0) for s in args.sparsities]
    runs += [("obert", s, 1, 0) for s in args.sparsities if 1 in args.recomputations]
    for r in sorted(args.recomputations):
        if r != 1:
            runs.append(("obert", top, r, 0))
    for seed in range(1, args.seeds):
        runs += [("obert", top, r, seed) for r in sorted(args.recomputations)]
    for r in sorted(args.recomputations):
        if r != 1:
            runs += [("obert", s, r, 0) for s in sorted(args.sparsities, reverse=True) if s != top]

    results: list[dict[str, Any]] = []

    def report(complete: bool) -> str:
        summary: dict[str, Any] = {}
        for r in sorted(args.recomputations):
            accs = [
                x["accuracy"]
                for x in results
                if x["method"] == "obert" and x["recomputations"] == r and x["sparsity"] == top
            ]
            if accs:
                mean = sum(accs) / len(accs)
                sd = math.sqrt(sum((a - mean) ** 2 for a in accs) / max(1, len(accs) - 1))
                summary[f"obert_r{r}_at_{top:g}"] = {"mean": mean, "std": sd, "n": len(accs)}
        info["loadavg_now"] = list(os.getloadavg())
        final = {
            "dense_accuracy": dense_acc,
            "results": results,
            "complete": complete,
            "seed_summary": summary,
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "dense_model": str(dense_dir),
            "machine": info,
        }
        line = json.dumps(final)
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(line + "\n")
        return line

    for method, sparsity, r, seed in runs:
        model.load_state_dict(dense_state)
        targets = prunable_targets(model)
        config: PruningConfig
        source = None
        if method == "magnitude":
            config = MagnitudeConfig()
        else:
            config = OBertConfig(
                num_grads=args.grads,
                block_size=args.block_size,
                damp=args.damp,
                num_recomputations=r,
                grad_batch_size=args.grad_batch,
                memory_budget_bytes=12 << 30,
                chunk_size=64,
                update=args.update,
            )
            batches = gradient_batches(train, args.grads, args.grad_batch, seed)
            source = GradientSource(model=model, batches=lambda b=batches: b, loss_fn=hf_loss)
        start = time.perf_counter()
        prune(config, targets, sparsity, gradients=source, device=torch.device("cpu"))
        elapsed = time.perf_counter() - start
        acc = accuracy(model, dev)
        row = {
            "method": method,
            "sparsity": sparsity,
            "recomputations": r if method == "obert" else 0,
            "seed": seed,
            "accuracy": acc,
            "measured_sparsity": sparsity_of(targets).overall,
            "prune_seconds": elapsed,
        }
        results.append(row)
        print(f"result: {json.dumps(row)}", flush=True)
        report(complete=False)
    print(report(complete=True), flush=True)


if __name__ == "__main__":
    main()
