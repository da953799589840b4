"""The CPU a job's latencies were measured on: its model name, core count, the threads the
timed sessions used, and the int8 instructions it has. An int8 speedup depends on these: with
AVX-512 VNNI (or AVX-VNNI, AMX) an int8 dot product is one instruction, while plain AVX2 needs
three, so the same artifact's speedup over fp32 differs from one machine to the next."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
# The flags that decide the int8 kernels ONNX Runtime and PyTorch pick: x86 slowest first,
# then Arm's dot-product and matrix-multiply extensions.
INT8_FLAGS = (
    "avx2", "avx512f", "avx512bw", "avx_vnni", "avx512_vnni", "amx_int8", "asimddp", "i8mm",
)  # fmt: skip


# Instructions whose int8 dot product accumulates in 32 bits (no intermediate saturation).
EXACT_INT8_DOT = ("avx_vnni", "avx512_vnni", "amx_int8")


def int8_reduced_range(flags: list[str] | tuple[str, ...] | None) -> bool:
    """Whether int8 weights must be 7-bit (ONNX Runtime's `reduce_range`) on a CPU with these
    INT8_FLAGS. Without VNNI or AMX, x86's u8s8 int8 kernels (AVX2, AVX-512 BW) add pairs of
    u8 x s8 products in int16 (vpmaddubsw), which saturates at 8-bit weights (255 * 127 * 2 >
    32767); ONNX Runtime's quantization guide gives reduce_range for these machines. Measured
    here: an FFN block's int8 output off by 16% of its range at 8 bits, 1.8% at 7 (AVX2 EPYC).
    Unknown flags (None) and Arm: 8 bits."""
    found = set(flags or ())
    return "avx2" in found and not found.intersection(EXACT_INT8_DOT)


def host_int8_reduced_range(cpuinfo: Path = CPUINFO) -> bool:
    """int8_reduced_range for this machine's CPU."""
    return int8_reduced_range(cpu_info(1, cpuinfo)["int8_instructions"])


def _cpuinfo_fields(text: str) -> tuple[str, set[str]]:
    """The first processor's model name and flags in a /proc/cpuinfo text."""
    model, flags = "", set[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags


def _usable_cores() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count()


def cpu_info(threads: int, cpuinfo: Path = CPUINFO) -> dict[str, Any]:
    """Model, cores, `threads` (what the timed sessions used) and the int8 instructions
    present, in INT8_FLAGS order (None where /proc/cpuinfo cannot be read or lists no flags:
    not known). Cores are those this process may run on."""
    try:
        model, flags = _cpuinfo_fields(cpuinfo.read_text(encoding="utf-8", errors="replace"))
        found: list[str] | None = [f for f in INT8_FLAGS if f in flags] if flags else None
    except OSError:
        model, found = "", None
    return {
        "model": model or platform.processor() or platform.machine() or "unknown",
        "cores": _usable_cores(),
        "threads": threads,
        "int8_instructions": found,
    }


def describe(info: dict[str, Any]) -> str:
    """One line for report.md: model, cores, threads, int8 instructions."""
    found = info.get("int8_instructions")
    isa = "unknown" if found is None else ", ".join(found) or "none of " + ", ".join(INT8_FLAGS)
    return (
        f"{info.get('model', 'unknown')}, {info.get('cores')} cores, timed at "
        f"{info.get('threads')} thread(s); int8 instructions: {isa}"
    )
