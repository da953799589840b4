"""Benchmark: the oBERT block Fisher inverse on the real MiniLM-L6 encoder.

1. The batched build (``F_b += G_b^T G_b`` from chunks of gradients written straight into the
   block layout, then one batched float64 Cholesky inverse) over all 36 encoder Linear weight
   matrices (10.6M weights), B = 50, m = 256 and 1024, against the sequential rank-1 Woodbury
   reference on the same gradients, on a slice of ~2M weights (the first 8 matrices), where the
   full size would take hours. Gradients are synthetic but shaped like real ones (per-weight
   log-normal scales and a shared low-rank component, so blocks are far from diagonal); they
   are generated per chunk from fixed seeds, outside the timed regions, so both constructions
   see identical values. Each construction runs in its own process (peak RSS per phase).
2. One whole oBERT pruning step on MiniLM-L6 with real SST-2 gradients (m = 256 mini-batches of
   16 examples, length 64, to 50% global unstructured), with its time broken down.

The machine's sgemm peak is measured here too. The last line printed is one JSON object.
Usage: ``python bench/fisher.py [--grads 256 1024] [--step-grads 256] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    RESULTS,
    batches_of,
    hf_loss,
    load_minilm,
    machine,
    minilm_path,
    peak_rss_bytes,
    read_sst2,
    tokenize,
)

BLOCK = 50
DAMP = 1e-7
CHUNK = 64
SLICE_TARGETS = 8
EXACT_BLOCKS = 2000
RANK = 8


def sgemm_peak(threads: int, n: int = 2048, reps: int = 7) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def target_sizes() -> list[tuple[str, int]]:
    from worker.pipelines.architecture import prunable_targets

    model = load_minilm()
    return [(n, m.weight.numel()) for n, m in prunable_targets(model).items()]


class Synthetic:
    """Deterministic gradient-like rows for target ``t``: ``s * (u @ L + e)``."""

    def __init__(self, t: int, n: int) -> None:
        gen = torch.Generator().manual_seed(10_000 + t)
        self.t = t
        self.n = n
        self.scale = torch.exp(torch.randn(n, generator=gen)) * 1e-3
        self.loadings = torch.randn(RANK, n, generator=gen)

    def fill(self, out: torch.Tensor, chunk: int) -> None:
        rows = out.shape[0]
        gen = torch.Generator().manual_seed(1_000_000 * (chunk + 1) + self.t)
        u = torch.randn(rows, RANK, generator=gen)
        e = torch.randn(rows, self.n, generator=gen)
        torch.addmm(e, u, self.loadings, out=out[:, : self.n])
        out[:, : self.n] *= self.scale


def phase_batched(m: int, threads: int, save: str, queue: Any) -> None:
    from worker.compression import BlockFisherInverse

    torch.set_num_threads(threads)
    sizes = target_sizes()
    cpu = torch.device("cpu")
    fishers = [BlockFisherInverse(n, BLOCK, DAMP, cpu) for _, n in sizes]
    synth = [Synthetic(t, n) for t, (_, n) in enumerate(sizes)]
    buffers = [f.grad_buffer(CHUNK) for f in fishers]
    products = [0.0] * len(sizes)
    inverse = [0.0] * len(sizes)
    for c in range(math.ceil(m / CHUNK)):
        rows = min(CHUNK, m - c * CHUNK)
        for t, fisher in enumerate(fishers):
            synth[t].fill(buffers[t][:rows], c)
            start = time.perf_counter()
            fisher.add_grads(buffers[t][:rows])
            products[t] += time.perf_counter() - start
    del buffers
    fallback = 0
    for t, fisher in enumerate(fishers):
        start = time.perf_counter()
        fisher.invert()
        inverse[t] = time.perf_counter() - start
        fallback += fisher.fallback_blocks
    blocks = [f.num_blocks for f in fishers]
    torch.save([fishers[t].inverse_blocks() for t in range(SLICE_TARGETS)], save)
    queue.put(
        {
            "products_s": sum(products),
            "inverse_s": sum(inverse),
            "slice_products_s": sum(products[:SLICE_TARGETS]),
            "slice_inverse_s": sum(inverse[:SLICE_TARGETS]),
            "products_flop": 2.0 * m * sum(blocks) * BLOCK * BLOCK,
            "num_blocks": sum(blocks),
            "num_weights": sum(n for _, n in sizes),
            "fallback_blocks": fallback,
            "peak_rss_bytes": peak_rss_bytes(),
        }
    )


def _rel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.double(), b.double()
    return (a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)


def phase_reference(m: int, threads: int, save: str, queue: Any) -> None:
    from worker.compression import WoodburyFisherInverse

    torch.set_num_threads(threads)
    sizes = target_sizes()[:SLICE_TARGETS]
    cpu = torch.device("cpu")
    refs = [WoodburyFisherInverse(n, BLOCK, DAMP, m, cpu) for _, n in sizes]
    synth = [Synthetic(t, n) for t, (_, n) in enumerate(sizes)]
    exact_n = EXACT_BLOCKS * BLOCK
    exact = torch.zeros(EXACT_BLOCKS, BLOCK, BLOCK, dtype=torch.float64)
    elapsed = 0.0
    for c in range(math.ceil(m / CHUNK)):
        rows = min(CHUNK, m - c * CHUNK)
        for t, ref in enumerate(refs):
            buf = torch.zeros(rows, ref.padded)
            synth[t].fill(buf, c)
            if t == 0:
                g = buf[:, :exact_n].double().view(rows, EXACT_BLOCKS, BLOCK).permute(1, 0, 2)
                exact += g.transpose(1, 2) @ g
            start = time.perf_counter()
            ref.add_grads(buf)
            elapsed += time.perf_counter() - start
    exact = torch.linalg.inv(exact / m + DAMP * torch.eye(BLOCK, dtype=torch.float64))
    batched = torch.load(save)
    rel = torch.cat([_rel(b, r.f_inv) for b, r in zip(batched, refs, strict=True)])
    queue.put(
        {
            "reference_s": elapsed,
            "slice_weights": sum(n for _, n in sizes),
            "max_rel_diff": float(rel.max()),
            "median_rel_diff": float(rel.median()),
            "batched_vs_exact_fp64": float(_rel(batched[0][:EXACT_BLOCKS], exact).max()),
            "reference_vs_exact_fp64": float(_rel(refs[0].f_inv[:EXACT_BLOCKS], exact).max()),
            "peak_rss_bytes": peak_rss_bytes(),
        }
    )


def phase_step(m: int, threads: int, queue: Any) -> None:
    from worker.compression import (
        BlockFisherInverse,
        GradientSource,
        OBertConfig,
        prune,
        sparsity_of,
    )
    from worker.compression import obert as obert_module
    from worker.pipelines.architecture import prunable_targets

    torch.set_num_threads(threads)
    times: dict[str, float] = {
        k: 0.0 for k in ("collect", "products", "clear", "inverse", "scores", "select", "update")
    }

    def timed(key: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times[key] += time.perf_counter() - start

        return wrapper

    original_add = BlockFisherInverse.add_grads

    def add_grads(self: Any, grads: torch.Tensor, clear: bool = False) -> None:
        start = time.perf_counter()
        original_add(self, grads)
        mid = time.perf_counter()
        if clear:
            grads.zero_()
        times["products"] += mid - start
        times["clear"] += time.perf_counter() - mid

    BlockFisherInverse.add_grads = add_grads  # type: ignore[method-assign]
    BlockFisherInverse.invert = timed("inverse", BlockFisherInverse.invert)  # type: ignore[method-assign]
    BlockFisherInverse.obs_update = timed("update", BlockFisherInverse.obs_update)  # type: ignore[method-assign]
    obert_module.collect_fisher = timed("collect", obert_module.collect_fisher)
    obert_module.obert_scores = timed("scores", obert_module.obert_scores)
    obert_module.select_to_prune = timed("select", obert_module.select_to_prune)

    path = minilm_path()
    model = load_minilm(path)
    sentences, labels = read_sst2("train")
    batch_size, length = 16, 64
    data = tokenize(sentences[: m * batch_size], labels[: m * batch_size], length, path)
    batches = batches_of(data, batch_size)
    targets = prunable_targets(model)
    source = GradientSource(model=model, batches=lambda: batches, loss_fn=hf_loss)
    config = OBertConfig(
        num_grads=m, block_size=BLOCK, damp=DAMP, chunk_size=CHUNK, memory_budget_bytes=12 << 30
    )
    start = time.perf_counter()
    prune(config, targets, 0.5, gradients=source, device=torch.device("cpu"))
    total = time.perf_counter() - start
    fwd_bwd = times["collect"] - times["inverse"] - times["products"] - times["clear"]
    accounted = fwd_bwd + sum(times[k] for k in ("products", "clear", "inverse", "scores"))
    accounted += times["select"] + times["update"]
    queue.put(
        {
            "total_s": total,
            "forward_backward_s": fwd_bwd,
            "copy_into_block_layout_s": 0.0,
            "clear_buffers_s": times["clear"],
            "products_s": times["products"],
            "inverse_s": times["inverse"],
            "scores_s": times["scores"],
            "select_s": times["select"],
            "update_s": times["update"],
            "other_s": total - accounted,
            "overhead_fraction": (total - fwd_bwd) / total,
            "sparsity": sparsity_of(targets).overall,
            "num_grads": m,
            "batch_size": batch_size,
            "max_length": length,
            "peak_rss_bytes": peak_rss_bytes(),
        }
    )


def run_phase(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result: dict[str, Any] = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grads", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--step-grads", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-step", action="store_true")
    parser.add_argument(
        "--builds-from",
        type=Path,
        default=None,
        help="skip the build phases and reuse them from an earlier run's JSON (step only)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()

    info = machine()
    peak = sgemm_peak(args.threads)
    print(f"machine: {info}", flush=True)
    print(f"sgemm peak ({args.threads} threads): {peak:.1f} GFLOP/s", flush=True)
    builds: list[dict[str, Any]] = []
    if args.builds_from is not None:
        earlier = json.loads(args.builds_from.read_text().strip().splitlines()[-1])
        builds = earlier["builds"]
        peak = max(peak, earlier["sgemm_peak_gflops"])
        info["builds_from"] = str(args.builds_from)
        args.grads = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in args.grads:
            save = str(Path(tmp) / f"batched-{m}.pt")
            batched = run_phase(phase_batched, m, args.threads, save)
            print(f"m={m} batched: {json.dumps(batched)}", flush=True)
            ref = run_phase(phase_reference, m, args.threads, save)
            print(f"m={m} reference: {json.dumps(ref)}", flush=True)
            slice_batched = batched["slice_products_s"] + batched["slice_inverse_s"]
            gflops = batched["products_flop"] / batched["products_s"] / 1e9
            builds.append(
                {
                    "num_grads": m,
                    "batched_full_s": batched["products_s"] + batched["inverse_s"],
                    "batched_products_s": batched["products_s"],
                    "batched_inverse_s": batched["inverse_s"],
                    "batched_products_gflops": gflops,
                    "fraction_of_sgemm_peak": gflops / peak,
                    "batched_peak_rss_bytes": batched["peak_rss_bytes"],
                    "fallback_blocks": batched["fallback_blocks"],
                    "slice_weights": ref["slice_weights"],
                    "slice_batched_s": slice_batched,
                    "slice_reference_s": ref["reference_s"],
                    "reference_peak_rss_bytes": ref["peak_rss_bytes"],
                    "speedup_vs_reference": ref["reference_s"] / slice_batched,
                    "max_rel_diff": ref["max_rel_diff"],
                    "median_rel_diff": ref["median_rel_diff"],
                    "batched_vs_exact_fp64": ref["batched_vs_exact_fp64"],
                    "reference_vs_exact_fp64": ref["reference_vs_exact_fp64"],
                }
            )
    step: dict[str, Any] | None = None
    if not args.no_step:
        step = run_phase(phase_step, args.step_grads, args.threads)
        print(f"whole step: {json.dumps(step)}", flush=True)
    info["loadavg_end"] = list(__import__("os").getloadavg())
    result = {
        "speedup_vs_reference": min(b["speedup_vs_reference"] for b in builds),
        "fraction_of_sgemm_peak": min(b["fraction_of_sgemm_peak"] for b in builds),
        "max_rel_diff": max(b["max_rel_diff"] for b in builds),
        "step_overhead_fraction": None if step is None else step["overhead_fraction"],
        "sgemm_peak_gflops": peak,
        "block_size": BLOCK,
        "damp": DAMP,
        "chunk": CHUNK,
        "builds": builds,
        "step": step,
        "machine": info,
    }
    line = json.dumps(result)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n")
    print(line, flush=True)


if __name__ == "__main__":
    RESULTS.mkdir(parents=True, exist_ok=True)
    main()
