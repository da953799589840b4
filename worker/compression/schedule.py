"""Sparsity schedules."""

from __future__ import annotations


def cubic_sparsity(step: int, total_steps: int, init: float, final: float) -> float:
    """Cubic schedule (Zhu & Gupta): ``s_t = s_f + (s_i - s_f) (1 - t/T)^3``, with ``t`` clamped
    to ``[0, T]``; ``T <= 0`` gives the final sparsity."""
    if total_steps <= 0:
        return final
    frac = min(max(step / total_steps, 0.0), 1.0)
    value = final + (init - final) * (1.0 - frac) ** 3
    lo, hi = min(init, final), max(init, final)
    return min(max(value, lo), hi)
