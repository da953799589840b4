"""Benchmark: one-shot magnitude vs oBERT pruning on a tiny model of every encoder family, and
the ONNX fp32/int8 latency of the exported files against the dense model.

No pretrained weights of these families can be had offline, so each family is measured the
same way from scratch. Per family (`--families`, all eight by default):

1. A tokenizer of the family's kind (WordPiece, byte-level BPE, Unigram: the test factory
   tests/factories/encoders.py) trained on the SST-2 train subset, `--vocab` tokens.
2. A random model of the family's AutoModelForSequenceClassification with the same sizes for
   every family (SIZES: hidden 128, 4 layers (`--layers`), 4 heads, FFN 512; ELECTRA's
   embeddings 128 too; DeBERTa-v3 relative attention and ModernBERT's local (window 16) and
   global layers as in tests/factories/encoder_configs.FAMILY_OPTIONS), trained from scratch
   on a fixed SST-2 subset (the first `--train-examples` rows of train.tsv, batches drawn in
   an order shuffled with `--seed`): `--steps` AdamW steps at batch `--batch-size`, learning
   rate `--lr` with 10% linear warm-up and linear decay, weight decay 0.01, gradient clip 1.0,
   sentences cut at `--max-length` tokens (batches padded to their longest row). Dense
   accuracy on the full dev split (872), and as a floor the accuracy with every prunable
   matrix zeroed (`zeroed_accuracy`).
3. From that dense model each time: one-shot global unstructured pruning (no fine-tuning
   after) of the family's full prunable set (worker.pipelines.architecture.prunable_targets:
   every attention and feed-forward matrix of every layer) to each of `--sparsities` with
   magnitude and with oBERT (`--grads` mini-batch gradients of `--grad-batch` train
   examples drawn with seed 1000 + `--seed`, Fisher blocks of 50, damp 1e-7,
   `--recomputations` r), as bench/oneshot.py does; dev accuracy and the measured sparsity
   over the full prunable set.
4. Every model (dense and pruned) exported by worker.pipelines.export (fp32 ONNX, and int8 by
   ONNX Runtime's quantize_dynamic): dev accuracy of each file, its parity (the fraction of
   dev predictions equal to its PyTorch model's, and the max |logit difference|), and
   batch-1 / batch-32 latency at `--max-length` at `--threads` ORT threads, taken in rounds
   that alternate over all of a family's files (worker.pipelines.export.interleaved_latencies).
   Unstructured zeros do not make ONNX Runtime's dense kernels faster: expect the pruned
   files to time like the dense one, int8 to be the speed-up.

Default budget: 8,000 train examples, vocabulary 4,000, 1,000 steps at batch 32 (4 epochs),
lr 1e-3, length 64, sparsities 50% and 70%, oBERT m = 128 gradients of 16 examples, r = 1,
latency over 100 batch-1 and 20 batch-32 runs per file. At 1 thread on the 2-core machine
here a training step takes 0.10-0.13 s (DeBERTa and ModernBERT the dearest), an oBERT pruning
6-10 s, a family about 2.5-3 minutes all told, all eight about 22 minutes (CPU time: each line
has `seconds` and `cpu_seconds`, and `machine.loadavg` for what else the machine was doing).

One JSON line per family on stdout (progress on stderr), each with the machine (CPU, int8
instructions, threads); `--out DIR` also writes each line to DIR/architectures-....json.

Usage: ``python bench/architectures.py --out bench/results`` (all eight families), or
``--families roberta --steps 50`` for a quick look.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import hf_loss, machine, peak_rss_bytes, read_sst2, result_name, warmup_linear
from tests.factories.encoder_configs import FAMILIES, tiny_config
from tests.factories.encoders import FAMILY_TOKENIZERS, train_tokenizer
from worker.compression import GradientSource, MagnitudeConfig, OBertConfig, prune, sparsity_of
from worker.compression.config import PruningConfig
from worker.pipelines.architecture import prunable_targets
from worker.pipelines.export import (
    export_onnx,
    feed_of,
    interleaved_latencies,
    open_session,
    quantize_onnx_int8,
)

SIZES = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
         "intermediate_size": 512}  # fmt: skip
Rows = tuple[list[list[int]], list[int]]  # token ids of each sentence, labels


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def encode(tok: Any, sentences: list[str], labels: list[int], max_length: int) -> Rows:
    ids = tok(sentences, truncation=True, max_length=max_length)["input_ids"]
    return list(ids), list(labels)


def collate(tok: Any, rows: list[list[int]], labels: list[int]) -> dict[str, Tensor]:
    """A batch padded to its longest row (token_type_ids when the tokenizer gives them)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(labels)}
    if "token_type_ids" in tok.model_input_names:
        batch["token_type_ids"] = torch.zeros_like(ids)
    return batch


def batches(
    tok: Any, data: Rows, size: int, order: list[int] | None = None
) -> list[dict[str, Tensor]]:
    order = order if order is not None else list(range(len(data[1])))
    return [
        collate(
            tok,
            [data[0][i] for i in order[s : s + size]],
            [data[1][i] for i in order[s : s + size]],
        )
        for s in range(0, len(order), size)
    ]


def build_model(family: str, vocab_size: int, layers: int, seed: int) -> nn.Module:
    from transformers import AutoModelForSequenceClassification

    sizes = SIZES | {"num_hidden_layers": layers}
    extra = {"embedding_size": SIZES["hidden_size"]} if family == "electra" else {}
    config = tiny_config(family, vocab_size=vocab_size, num_labels=2, **sizes, **extra)
    torch.manual_seed(seed)
    model: nn.Module = AutoModelForSequenceClassification.from_config(config)
    return model


def train(model: nn.Module, tok: Any, data: Rows, args: argparse.Namespace) -> dict[str, Any]:
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = warmup_linear(opt, args.steps)
    rng = random.Random(args.seed)
    order: list[int] = []
    model.train()
    start, cpu, losses = time.perf_counter(), time.process_time(), []
    for step in range(args.steps):
        if len(order) < args.batch_size:
            order = list(range(len(data[1])))
            rng.shuffle(order)
        idx, order = order[: args.batch_size], order[args.batch_size :]
        loss = hf_loss(model, collate(tok, [data[0][i] for i in idx], [data[1][i] for i in idx]))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 250 == 0 or step == args.steps - 1:
            log(f"  step {step}/{args.steps} loss {loss.item():.4f} "
                f"({time.perf_counter() - start:.0f}s)")  # fmt: skip
    model.eval()
    tail = losses[-50:]
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "final_loss": round(sum(tail) / len(tail), 4),
    }


@torch.no_grad()
def torch_logits(model: nn.Module, dev: list[dict[str, Tensor]]) -> np.ndarray:
    model.eval()
    inputs = [{k: v for k, v in b.items() if k != "labels"} for b in dev]
    return np.concatenate([model(**b).logits.numpy() for b in inputs])


def onnx_logits(session: Any, dev: list[dict[str, Tensor]]) -> np.ndarray:
    return np.concatenate([session.run(None, feed_of(session, b))[0] for b in dev])


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return round(float((logits.argmax(-1) == labels).mean()), 4)


def parity(logits: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    same = float((logits.argmax(-1) == reference.argmax(-1)).mean())
    return {"agreement": round(same, 4), "max_abs_diff": float(np.abs(logits - reference).max())}


def exported(model: nn.Module, tok: Any, folder: Path, name: str, args: argparse.Namespace,
             dev: list[dict[str, Tensor]], labels: np.ndarray, reference: np.ndarray,
             ) -> tuple[dict[str, Any], dict[str, Path]]:  # fmt: skip
    """fp32 and int8 ONNX files of `model`: dev accuracy and parity with its PyTorch logits."""
    fp32 = export_onnx(model, tok, folder / f"{name}.onnx", max_length=args.max_length)
    int8 = quantize_onnx_int8(fp32, folder / f"{name}.int8.onnx")
    out: dict[str, Any] = {}
    for variant, path in (("fp32", fp32), ("int8", int8)):
        logits = onnx_logits(open_session(path, threads=args.threads), dev)
        out[f"onnx_{variant}"] = {"accuracy": accuracy(logits, labels),
                                  "parity": parity(logits, reference)}  # fmt: skip
    return out, {f"{name}_fp32": fp32, f"{name}_int8": int8}


def pruning_config(method: str, args: argparse.Namespace) -> PruningConfig:
    if method == "magnitude":
        return MagnitudeConfig()
    return OBertConfig(
        num_grads=args.grads, block_size=50, damp=1e-7, num_recomputations=args.recomputations,
        grad_batch_size=args.grad_batch, chunk_size=64,
    )  # fmt: skip


def pruned(model: nn.Module, dense: dict[str, Tensor], method: str, sparsity: float,
           grads: list[dict[str, Tensor]], args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """Prune the dense model's full prunable set one-shot; the row of the result."""
    model.load_state_dict(dense)
    targets = prunable_targets(model)
    source = None
    if method == "obert":
        source = GradientSource(model=model, batches=lambda: grads, loss_fn=hf_loss)
    start = time.perf_counter()
    prune(pruning_config(method, args), targets, sparsity, gradients=source,
          device=torch.device("cpu"))  # fmt: skip
    return {
        "method": method, "sparsity": sparsity,
        "measured_sparsity": round(sparsity_of(targets).overall, 6),
        "prune_seconds": round(time.perf_counter() - start, 2),
    }  # fmt: skip


def run_family(family: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    t0, cpu0, info = time.perf_counter(), time.process_time(), machine()
    sentences, labels = read_sst2("train")
    sentences, labels = sentences[: args.train_examples], labels[: args.train_examples]
    tok = train_tokenizer(family, tuple(sentences), args.vocab)
    model = build_model(family, len(tok), args.layers, args.seed)
    train_rows = encode(tok, sentences, labels, args.max_length)
    dev_rows = encode(tok, *read_sst2("dev"), args.max_length)
    dev, dev_labels = batches(tok, dev_rows, 64), np.array(dev_rows[1])
    log(f"{family}: {sum(p.numel() for p in model.parameters())} parameters, training")
    training = train(model, tok, train_rows, args)
    dense_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    dense_logits = torch_logits(model, dev)
    targets = prunable_targets(model)
    dense: dict[str, Any] = {"accuracy": accuracy(dense_logits, dev_labels)}
    with torch.no_grad():  # the floor: every prunable matrix zero (biases kept)
        for t in targets.values():
            t.weight.zero_()
    dense["zeroed_accuracy"] = accuracy(torch_logits(model, dev), dev_labels)
    model.load_state_dict(dense_state)
    log(f"{family}: dense accuracy {dense['accuracy']}")
    onnx, files = exported(model, tok, work, "dense", args, dev, dev_labels, dense_logits)
    dense |= onnx
    g = torch.Generator().manual_seed(1000 + args.seed)
    picked = torch.randperm(len(train_rows[1]), generator=g)[: args.grads * args.grad_batch]
    grads = batches(tok, train_rows, args.grad_batch, picked.tolist())
    results = []
    for sparsity in args.sparsities:
        for method in ("magnitude", "obert"):
            row = pruned(model, dense_state, method, sparsity, grads, args)
            logits = torch_logits(model, dev)
            row["accuracy"] = accuracy(logits, dev_labels)
            row["name"] = name = f"{method}-{round(sparsity * 100)}"
            onnx, paths = exported(model, tok, work, name, args, dev, dev_labels, logits)
            row |= onnx
            files |= paths
            results.append(row)
            log(f"{family}: {name} accuracy {row['accuracy']} ({row['prune_seconds']}s)")
    sessions = {k: open_session(p, threads=args.threads) for k, p in files.items()}
    latency = interleaved_latencies(sessions, tok, args.max_length, iters_b1=args.latency_iters,
                                    iters_b32=max(2, args.latency_iters // 5))  # fmt: skip
    for name, out in [("dense", dense)] + [(r["name"], r) for r in results]:
        out["latency"] = {v: latency[f"{name}_{v}"] for v in ("fp32", "int8")}
    info["loadavg_now"] = list(os.getloadavg())
    return {
        "family": family, "model_type": tiny_config(family).model_type,
        "tokenizer": {"kind": FAMILY_TOKENIZERS[family].kind, "class": type(tok).__name__,
                      "vocab_size": len(tok)},
        "sizes": SIZES | {"num_hidden_layers": args.layers},
        "parameters": sum(p.numel() for p in model.parameters()),
        "prunable": {"matrices": len(targets),
                     "weights": sum(t.weight.numel() for t in targets.values())},
        "training": training, "dense": dense, "results": results,
        "seconds": round(time.perf_counter() - t0, 1),
        "cpu_seconds": round(time.process_time() - cpu0, 1), "peak_rss_mb": peak_rss_bytes() >> 20,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": info,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    p.add_argument("--steps", type=int, default=1000, help="dense training steps")
    p.add_argument("--layers", type=int, default=SIZES["num_hidden_layers"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--train-examples", type=int, default=8000, help="SST-2 train subset")
    p.add_argument("--vocab", type=int, default=4000, help="tokenizer vocabulary size")
    p.add_argument("--max-length", type=int, default=64, help="training cap and latency length")
    p.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.7])
    p.add_argument("--grads", type=int, default=128, help="oBERT m, mini-batch gradients")
    p.add_argument("--grad-batch", type=int, default=16)
    p.add_argument("--recomputations", type=int, default=1, help="oBERT r")
    p.add_argument("--latency-iters", type=int, default=100, help="batch-1 timed runs per file")
    p.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="also write each line to a file here")
    args = p.parse_args(argv)
    longest = min(t.max_length for t in FAMILY_TOKENIZERS.values())
    if args.max_length > longest:
        p.error(f"--max-length: at most {longest} (the tiny models' positions)")
    torch.set_num_threads(args.threads)
    for family in args.families:
        with tempfile.TemporaryDirectory(prefix=f"arch-{family}-") as work:
            line = json.dumps(run_family(family, args, Path(work)))
        print(line, flush=True)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            name = result_name(
                "architectures", family, f"{args.steps}steps", f"{args.threads}thread"
            )
            (args.out / name).write_text(line + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
