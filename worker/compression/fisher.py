"""Block-diagonal empirical Fisher and its inverse.

``F = damp * I + (1/m) sum_i g_i g_i^T``, restricted to diagonal blocks of ``B`` consecutive
weights of a flattened weight matrix (the tail is zero-padded to a whole block).

:class:`BlockFisherInverse` builds it from chunks of gradients with one batched product per
chunk (``F_b += G_b^T G_b`` for every block b at once) and inverts all blocks with a batched
Cholesky factorization and inverse in float32, redoing in float64 only the blocks whose
pivots show a loss of precision (or every block, on request). Blocks that are not numerically
positive definite fall back to a clamped eigendecomposition (never an exception).
:func:`woodbury_fisher_inverse` is the sequential rank-1 Sherman-Morrison-Woodbury
construction of the reference implementation, kept for tests and benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
from torch import Tensor


def _eigh_pinv(a: Tensor, floor: float) -> Tensor:
    """Inverse with eigenvalues clamped to at least ``floor`` relative to the largest (for
    blocks that are not numerically positive definite)."""
    a = torch.nan_to_num(0.5 * (a + a.transpose(1, 2)), nan=0.0, posinf=0.0, neginf=0.0)
    try:
        evals, evecs = torch.linalg.eigh(a)
    except RuntimeError:
        diag = a.diagonal(dim1=1, dim2=2).clamp_min(floor)
        fallback: Tensor = torch.diag_embed(torch.reciprocal(diag))
        return fallback
    top = evals.abs().amax(dim=-1, keepdim=True)
    evals = torch.maximum(evals, top * 1e-12).clamp_min(floor)
    inv: Tensor = (evecs / evals.unsqueeze(1)) @ evecs.transpose(1, 2)
    return inv


def _cholesky_with_fallback(a: Tensor) -> tuple[Tensor, Tensor]:
    """Batched Cholesky factors of ``a`` (n, k, k) and the indices of the blocks whose
    factorization failed (not numerically positive definite)."""
    chol, info = torch.linalg.cholesky_ex(a)
    bad = (info != 0) | ~torch.isfinite(chol).flatten(1).all(dim=1)
    return chol, bad.nonzero().flatten()


@contextmanager
def _one_intra_op_thread() -> Iterator[int]:
    """Temporarily run torch ops on one intra-op thread, yielding the previous count."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield 1
        return
    torch.set_num_threads(1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


def _split_run(fn: Callable[..., Tensor], *batches: Tensor) -> Tensor:
    """Run ``fn`` (batched LAPACK calls) on matching slices of the batches in parallel Python
    threads, each LAPACK call single-threaded. Threads inside each call of a small-matrix
    LAPACK routine gain nothing and spin-wait badly on a busy machine (measured 17x slower on 2
    loaded cores); splitting the batch across threads keeps every core busy instead. The
    intra-op thread count is restored afterwards."""
    with _one_intra_op_thread() as threads:
        workers = max(1, min(threads, batches[0].shape[0] // 256))
        if workers == 1:
            return fn(*batches)
        slices = [b.chunk(workers) for b in batches]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(fn, *slices))
    return torch.cat(parts)


def _inverse_cholesky(a: Tensor) -> Tensor:
    """``L^-1`` for ``A = L L^T`` per block, NaN-filled for blocks that are not positive
    definite."""
    n, k = a.shape[0], a.shape[-1]
    chol, bad = _cholesky_with_fallback(a)
    eye = torch.eye(k, dtype=a.dtype, device=a.device)
    if bad.numel():
        chol[bad] = eye
    inv: Tensor = torch.linalg.solve_triangular(chol, eye.expand(n, k, k), upper=False)
    if bad.numel():
        inv[bad] = float("nan")
    return inv


def _fast_inverse(a: Tensor, pivot_tol: float) -> Tensor:
    """Cholesky factorization and inverse (``potri``) in the dtype of ``a``; blocks whose
    factorization fails or loses precision are NaN-filled for the caller to redo. Precision
    loss is read from the pivots: ``L_ii^2 / A_ii`` is how much of a diagonal entry survives
    the elimination, and a ratio below ``pivot_tol`` means cancellation has eaten that many
    of the dtype's digits (decoupled coordinates, e.g. masked weights, keep a ratio of 1)."""
    chol, info = torch.linalg.cholesky_ex(a)
    pivots = chol.diagonal(dim1=1, dim2=2).square() / a.diagonal(dim1=1, dim2=2)
    bad = (info != 0) | ~(pivots.amin(dim=1) >= pivot_tol)
    if bool(bad.any()):
        chol[bad] = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    inv = torch.cholesky_inverse(chol)
    if bool(bad.any()):
        inv[bad] = float("nan")
    return inv


def batched_spd_inverse(
    a: Tensor,
    floor: float = 1e-12,
    product_dtype: torch.dtype | None = None,
    fast_dtype: torch.dtype | None = None,
    pivot_tol: float = 1e-2,
) -> tuple[Tensor, int]:
    """Inverse of each symmetric positive definite matrix in ``a`` (n, k, k).

    With ``fast_dtype`` (e.g. float32): one batched Cholesky factorization and ``potri`` in
    that dtype for all blocks, and only the blocks it cannot do accurately (a pivot ratio
    below ``pivot_tol``, see :func:`_fast_inverse`; a float32 inverse loses about
    ``6e-8 / ratio`` relative, so the default 1e-2 keeps it near 1e-5) are redone in float64.
    Without it, or for those blocks: Cholesky ``A = L L^T`` and a triangular solve for
    ``L^-1`` in float64, then ``A^-1 = L^-T L^-1``. Blocks that are not numerically positive
    definite even in float64 are inverted through a clamped eigendecomposition (never an
    exception). Returns the inverses (in ``product_dtype``, default the dtype of ``a``) and how
    many blocks needed the eigendecomposition fallback."""
    out_dtype = product_dtype or a.dtype
    if a.shape[0] == 0:
        return a.to(out_dtype), 0
    if fast_dtype is not None:
        inv = _split_run(lambda x: _fast_inverse(x, pivot_tol), a.to(fast_dtype)).to(out_dtype)
        redo = (~torch.isfinite(inv.diagonal(dim1=1, dim2=2)).all(dim=1)).nonzero().flatten()
        if redo.numel():
            exact, failed = batched_spd_inverse(a[redo].to(torch.float64), floor, out_dtype)
            inv[redo] = exact
            return inv, failed
        return inv, 0
    a = a.to(torch.float64) if a.dtype != torch.float64 else a
    chol_inv = _split_run(_inverse_cholesky, a).to(out_dtype)
    bad = (~torch.isfinite(chol_inv.diagonal(dim1=1, dim2=2)).all(dim=1)).nonzero().flatten()
    inv = torch.bmm(chol_inv.transpose(1, 2), chol_inv)
    if bad.numel():
        inv[bad] = _eigh_pinv(a[bad], floor).to(out_dtype)
    return inv, int(bad.numel())


def batched_spd_solve(a: Tensor, b: Tensor, floor: float = 1e-12) -> Tensor:
    """Solve ``a x = b`` for symmetric positive definite blocks (n, k, k) and (n, k, 1), with
    the same eigendecomposition fallback for blocks that are not positive definite."""
    if a.shape[0] == 0:
        return b.clone()

    def solve(aa: Tensor, bb: Tensor) -> Tensor:
        chol, bad = _cholesky_with_fallback(aa)
        if bad.numel():
            chol[bad] = torch.eye(aa.shape[-1], dtype=aa.dtype, device=aa.device)
        x = torch.cholesky_solve(bb, chol)
        if bad.numel():
            x[bad] = torch.bmm(_eigh_pinv(aa[bad], floor), bb[bad])
        return x

    return _split_run(solve, a, b)


class BlockFisherInverse:
    """The block-diagonal empirical Fisher of one flattened weight matrix, and its inverse.

    Steps: :meth:`add_grads` (any number of times, chunks of gradients as rows), then
    :meth:`invert` (optionally with a mask of kept weights), then :meth:`diag`,
    :meth:`diag_blocks`, :meth:`mul` and :meth:`obs_update`; :meth:`free` releases the state.

    Gradients are best written straight into a buffer from :meth:`grad_buffer` (rows of
    ``padded`` floats): row ``s`` of that buffer *is* sample ``s`` in block layout, and the
    batched product reads it through a strided (num_blocks, chunk, B) view, no copy.
    """

    def __init__(
        self,
        num_weights: int,
        block_size: int,
        damp: float,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if num_weights < 1 or block_size < 1:
            raise ValueError("num_weights and block_size must be >= 1")
        self.num_weights = num_weights
        self.block_size = block_size
        self.damp = float(damp)
        self.device = device
        self.dtype = dtype
        self.num_blocks = math.ceil(num_weights / block_size)
        self.padded = self.num_blocks * block_size
        self.num_grads = 0
        self.fallback_blocks = 0
        self._inverted = False
        self._state: Tensor | None = torch.zeros(
            self.num_blocks, block_size, block_size, dtype=dtype, device=device
        )

    @staticmethod
    def state_bytes(num_weights: int, block_size: int, dtype: torch.dtype) -> int:
        blocks = math.ceil(num_weights / block_size)
        return blocks * block_size * block_size * torch.empty((), dtype=dtype).element_size()

    @property
    def state(self) -> Tensor:
        if self._state is None:
            raise RuntimeError("BlockFisherInverse was freed")
        return self._state

    def grad_buffer(self, rows: int) -> Tensor:
        """A zeroed (rows, padded) buffer to write gradients into (sample s -> row s)."""
        return torch.zeros(rows, self.padded, dtype=self.dtype, device=self.device)

    def add_grads(self, grads: Tensor, clear: bool = False) -> None:
        """Accumulate ``sum_s g_s g_s^T`` per block for the rows of ``grads`` ((c, padded) or
        (c, num_weights)), with one batched product over all blocks. ``clear`` zeroes ``grads``
        afterwards (to reuse it as the next accumulation buffer)."""
        source = grads
        if self._inverted:
            raise RuntimeError("add_grads after invert")
        if grads.dim() != 2:
            raise ValueError("grads must be (samples, weights)")
        rows = grads.shape[0]
        if grads.shape[1] != self.padded:
            if grads.shape[1] != self.num_weights:
                raise ValueError(f"grads have {grads.shape[1]} columns, need {self.num_weights}")
            padded = self.grad_buffer(rows)
            padded[:, : self.num_weights] = grads
            grads = padded
        grads = grads.to(device=self.device, dtype=self.dtype)
        if grads.stride(1) != 1:
            grads = grads.contiguous()
        blocks = grads.view(rows, self.num_blocks, self.block_size).permute(1, 0, 2)
        self.state.baddbmm_(blocks.transpose(1, 2), blocks)
        self.num_grads += rows
        if clear:
            source.zero_()

    def invert(
        self, mask: Tensor | None = None, chunk_blocks: int = 4096, precision: str = "mixed"
    ) -> None:
        """Replace the accumulated sums by ``(damp I + (1/m) sum g g^T)^-1`` in place, in
        chunks of blocks. ``precision="mixed"`` (for a float32 state) factors in float32 and
        redoes in float64 only the blocks whose pivots show a loss of precision (see
        :func:`batched_spd_inverse`); ``"float64"`` does every block in float64. ``mask``
        (num_weights,) bool, True = kept: the gradients of masked-off weights are treated as
        zero (their rows and columns are cleared), which decouples them from the rest. Padding
        and masked coordinates keep ``damp`` on the diagonal (1 when damp is 0), so every block
        stays invertible."""
        if self._inverted:
            raise RuntimeError("already inverted")
        if precision not in ("mixed", "float64"):
            raise ValueError(f"precision must be 'mixed' or 'float64', got {precision!r}")
        mixed = precision == "mixed" and self.dtype != torch.float64
        work = torch.float32 if mixed else torch.float64
        state = self.state
        keep: Tensor | None = None
        if mask is not None or self.padded != self.num_weights:
            keep = torch.zeros(self.padded, dtype=work, device=self.device)
            if mask is None:
                keep[: self.num_weights] = 1.0
            else:
                keep[: self.num_weights] = mask.reshape(-1).to(self.device, work)
            keep = keep.view(self.num_blocks, self.block_size)
        scale = 1.0 / max(self.num_grads, 1)
        filler = self.damp if self.damp > 0 else 1.0
        for start in range(0, self.num_blocks, chunk_blocks):
            stop = min(start + chunk_blocks, self.num_blocks)
            a = state[start:stop].to(work, copy=True).mul_(scale)
            if keep is not None:
                k = keep[start:stop]
                if not bool(k.all()):
                    a.mul_(k.unsqueeze(2)).mul_(k.unsqueeze(1))
                a.diagonal(dim1=1, dim2=2).add_(self.damp * k + filler * (1.0 - k))
            else:
                a.diagonal(dim1=1, dim2=2).add_(self.damp)
            inv, failed = batched_spd_inverse(
                a, product_dtype=self.dtype, fast_dtype=torch.float32 if mixed else None
            )
            self.fallback_blocks += failed
            state[start:stop] = inv
        self._inverted = True

    def _need_inverse(self) -> Tensor:
        if not self._inverted:
            raise RuntimeError("call invert() first")
        return self.state

    def inverse_blocks(self) -> Tensor:
        """The (num_blocks, B, B) inverse blocks (a view of the state)."""
        return self._need_inverse()

    def diag(self) -> Tensor:
        """``diag(F^-1)`` for the real (unpadded) weights, shape (num_weights,)."""
        inv = self._need_inverse()
        return inv.diagonal(dim1=1, dim2=2).reshape(-1)[: self.num_weights]

    def diag_blocks(self, size: int) -> Tensor:
        """The ``size x size`` diagonal sub-blocks of ``F^-1`` for consecutive groups of
        ``size`` weights, shape (num_weights // size, size, size)."""
        inv = self._need_inverse()
        b = self.block_size
        if b % size or self.num_weights % size:
            raise ValueError(f"block_size and num_weights must be divisible by {size}")
        g = b // size
        view = inv.view(self.num_blocks, g, size, g, size)
        sub = torch.diagonal(view, dim1=1, dim2=3).permute(0, 3, 1, 2)
        return sub.reshape(-1, size, size)[: self.num_weights // size]

    def _pad(self, v: Tensor) -> Tensor:
        out = torch.zeros(self.padded, dtype=torch.float64, device=self.device)
        out[: self.num_weights] = v.reshape(-1).to(self.device, torch.float64)
        return out.view(self.num_blocks, self.block_size)

    def mul(self, v: Tensor) -> Tensor:
        """``F^-1 v`` for a (num_weights,) vector (float64 result)."""
        inv = self._need_inverse()
        vb = self._pad(v).to(self.dtype)
        out = torch.bmm(inv, vb.unsqueeze(2)).squeeze(2).reshape(-1)
        return out[: self.num_weights].to(torch.float64)

    def obs_update(
        self,
        weights: Tensor,
        prune: Tensor,
        chunk_blocks: int = 4096,
        joint: bool = True,
        group: int = 1,
    ) -> Tensor:
        """The OBS update of the remaining weights for removing the weights in ``prune`` (bool,
        (num_weights,)). Returns dw (float64); callers set the removed weights to exactly 0.

        ``joint=True``: in every Fisher block with removed set Q, the exact joint solution
        ``dw = -F^-1 E_Q^T ([F^-1]_QQ)^-1 w_Q`` (the minimiser of ``1/2 dw^T F dw`` subject to
        ``w_Q + dw_Q = 0``); blocks are independent under the block-diagonal Fisher, so the
        whole update is the sum of the per-block ones.
        ``joint=False``: the paper's sum of the single-unit updates over the removed units
        (units of ``group`` consecutive weights: ``-F^-1 E_q^T ([F^-1]_qq)^-1 w_q`` each), one
        batched matrix-vector product; cheaper, exact only for one unit per block."""
        inv = self._need_inverse()
        w = self._pad(weights)
        q = self._pad(prune.to(torch.float64))
        dw = torch.zeros(self.num_blocks, self.block_size, dtype=torch.float64, device=self.device)
        active = (q.sum(dim=1) > 0).nonzero().flatten()
        for start in range(0, active.numel(), chunk_blocks):
            idx = active[start : start + chunk_blocks]
            finv = inv[idx]
            qc = q[idx]
            wq = qc * w[idx]
            if joint:
                finv = finv.to(torch.float64)
                m = finv * qc.unsqueeze(2) * qc.unsqueeze(1)
                m.diagonal(dim1=1, dim2=2).add_(1.0 - qc)
                lam = batched_spd_solve(m, wq.unsqueeze(2))
            elif group == 1:
                lam = (wq / finv.diagonal(dim1=1, dim2=2).to(torch.float64)).unsqueeze(2)
            else:
                g = self.block_size // group
                view = finv.view(-1, g, group, g, group)
                sub = (
                    torch.diagonal(view, dim1=1, dim2=3)
                    .permute(0, 3, 1, 2)
                    .reshape(-1, group, group)
                    .to(torch.float64)
                )
                lam = batched_spd_solve(sub, wq.reshape(-1, group, 1)).view(-1, self.block_size, 1)
            # The independent update is one matrix-vector product per block, in the state's
            # dtype (the joint one stays in float64).
            dw[idx] = -torch.bmm(finv, lam.to(finv.dtype)).squeeze(2).to(torch.float64)
        return dw.reshape(-1)[: self.num_weights]

    def free(self) -> None:
        self._state = None


class WoodburyFisherInverse:
    """Reference: the block Fisher inverse built by sequential rank-1 Sherman-Morrison updates,
    as in the original oBERT implementation. It starts from ``I / damp`` and, for every
    gradient g, ``F^-1 <- F^-1 - (F^-1 g)(F^-1 g)^T / (m + g^T F^-1 g)``: m passes over the
    whole (num_blocks, B, B) state. ``num_grads`` (m) must be known up front."""

    def __init__(
        self,
        num_weights: int,
        block_size: int,
        damp: float,
        num_grads: int,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if damp <= 0:
            raise ValueError("the Woodbury construction needs damp > 0")
        self.num_weights = num_weights
        self.block_size = block_size
        self.num_grads = num_grads
        self.num_blocks = math.ceil(num_weights / block_size)
        self.padded = self.num_blocks * block_size
        eye = torch.eye(block_size, dtype=dtype, device=device)
        self.f_inv = (eye / damp).repeat(self.num_blocks, 1, 1)

    def add_grads(self, grads: Tensor) -> None:
        """Apply one rank-1 update per row of ``grads`` ((c, num_weights) or (c, padded))."""
        f_inv = self.f_inv
        for row in grads:
            g = torch.zeros(self.padded, dtype=f_inv.dtype, device=f_inv.device)
            g[: row.numel()] = row[: self.padded]
            gb = g.view(self.num_blocks, self.block_size, 1)
            f_inv_g = torch.bmm(f_inv, gb)
            denom = self.num_grads + torch.bmm(gb.transpose(1, 2), f_inv_g)
            f_inv.baddbmm_(f_inv_g / denom, f_inv_g.transpose(1, 2), alpha=-1.0)


def woodbury_fisher_inverse(grads: Tensor, block_size: int, damp: float) -> Tensor:
    """Reference block Fisher inverse of ``grads`` (m, n) by m sequential rank-1 updates (see
    :class:`WoodburyFisherInverse`); returns (num_blocks, B, B) in the dtype of ``grads``
    (padding coordinates keep ``1/damp``)."""
    m, n = grads.shape
    ref = WoodburyFisherInverse(n, block_size, damp, m, grads.device, grads.dtype)
    ref.add_grads(grads)
    return ref.f_inv
