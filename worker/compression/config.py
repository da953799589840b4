"""Pruning method configurations (one dataclass per method)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GiB = 1 << 30


@dataclass(frozen=True)
class MagnitudeConfig:
    """Prune the weights (or blocks of 4, by L2 norm) of smallest magnitude."""


@dataclass(frozen=True)
class OBertConfig:
    """The Optimal BERT Surgeon (Kurtic et al. 2022, arXiv 2203.07259).

    num_grads: m, the number of mini-batch gradients in the empirical Fisher (paper: 1024; the
        CPU default is 64).
    block_size: B, consecutive weights of each flattened matrix per Fisher block. ``None``
        means 50 for unstructured pruning and 32 for block4 (it must be divisible by 4 there).
    damp: lambda in ``F = lambda I + (1/m) sum g g^T`` (paper: 1e-7).
    num_recomputations: r, sub-steps with interpolated targets, gradients and inverses
        recomputed between them.
    grad_batch_size: examples per mini-batch gradient (used by callers building batches).
    memory_budget_bytes: the most resident Fisher state (plus gradient buffers and inversion
        workspace) allowed at once; targets are processed in groups that fit, and a single
        target that cannot fit raises :class:`FisherMemoryError` before any work starts.
    chunk_size: gradients accumulated per batched product ``F_b += G_b^T G_b``.
    inverse_chunk_blocks: Fisher blocks inverted at once.
    inverse_precision: ``"mixed"`` (default) factors the blocks in float32 and redoes in
        float64 only those whose Cholesky pivots show a loss of precision; ``"float64"`` does
        every block in float64.
    update: ``"independent"`` (default) is the paper's update, the sum over the removed units
        of each unit's single-unit OBS update; ``"joint"`` applies, per Fisher block, the exact
        OBS update for the whole set of weights removed in that block (identical when a block
        loses one unit, dearer otherwise).
    """

    num_grads: int = 64
    block_size: int | None = None
    damp: float = 1e-7
    num_recomputations: int = 1
    grad_batch_size: int = 8
    memory_budget_bytes: int = 4 * GiB
    chunk_size: int = 32
    inverse_chunk_blocks: int = 4096
    inverse_precision: Literal["mixed", "float64"] = "mixed"
    update: Literal["joint", "independent"] = "independent"

    def resolved_block_size(self, structure: Literal["unstructured", "block4"]) -> int:
        if self.block_size is not None:
            return self.block_size
        return 32 if structure == "block4" else 50

    def validate(self, structure: Literal["unstructured", "block4"]) -> None:
        block = self.resolved_block_size(structure)
        if block < 1:
            raise ValueError(f"block_size must be >= 1, got {block}")
        if structure == "block4" and block % 4 != 0:
            raise ValueError(f"block4 pruning needs block_size divisible by 4, got {block}")
        if self.num_grads < 1:
            raise ValueError(f"num_grads must be >= 1, got {self.num_grads}")
        if self.damp < 0:
            raise ValueError(f"damp must be >= 0, got {self.damp}")
        if self.num_recomputations < 1:
            raise ValueError(f"num_recomputations must be >= 1, got {self.num_recomputations}")
        if self.chunk_size < 1 or self.inverse_chunk_blocks < 1:
            raise ValueError("chunk_size and inverse_chunk_blocks must be >= 1")
        if self.update not in ("joint", "independent"):
            raise ValueError(f"update must be 'joint' or 'independent', got {self.update!r}")
        if self.inverse_precision not in ("mixed", "float64"):
            raise ValueError(
                f"inverse_precision must be 'mixed' or 'float64', got {self.inverse_precision!r}"
            )
        if self.memory_budget_bytes < 1:
            raise ValueError("memory_budget_bytes must be >= 1")


PruningConfig = MagnitudeConfig | OBertConfig
