"""The CPU and memory one model upload may cost: a 525 KB .tar.gz of zero padding with its
safetensors shards stored in reverse name order cost 27 CPU-seconds to inspect (16 shards;
55 s with 32) when each shard was opened by seeking back in the gzip stream. Inspection now
reads every member once, in archive order, and refuses padding from the declared sizes."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.services.archives import ArchiveError
from app.services.model_inspect import inspect_archive
from tests.factories.archives import hostile_shards_targz

LIMITS = {"max_members": 256, "max_total_bytes": 4 * 1024**3}  # the defaults
MEASURE = """
import json, sys, time, tracemalloc
from pathlib import Path
from app.services.archives import ArchiveError
from app.services.model_inspect import inspect_archive

def peak_rss():  # VmHWM starts afresh at exec; ru_maxrss may carry the forked parent's
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))

tracemalloc.start()
cpu = time.process_time()
try:
    inspect_archive(Path(sys.argv[1]), "tar.gz", max_members=256, max_total_bytes=4 * 1024**3)
    outcome = "accepted"
except ArchiveError as exc:
    outcome = exc.code
cpu = time.process_time() - cpu
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"outcome": outcome, "cpu_s": cpu, "traced_peak": peak, "max_rss": peak_rss()}))
"""


@pytest.mark.parametrize("shards", [16, 32])
def test_hostile_shards_cost_under_2_cpu_seconds_and_200_mb(tmp_path: Path, shards: int) -> None:
    path = hostile_shards_targz(tmp_path / f"hostile-{shards}.tar.gz", shards)
    assert 500_000 < path.stat().st_size < 600_000
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=300,
        check=True, cwd=Path(__file__).resolve().parents[3],
    )  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["outcome"] in ("accepted", "archive_too_large", "weights_mismatch"), got
    assert got["cpu_s"] < 2.0, got
    assert got["traced_peak"] < 200 * 1024**2, got
    assert got["max_rss"] < 200 * 1024**2, got


def test_each_member_is_decompressed_once(tmp_path: Path) -> None:
    """Below the inflate floor (no padding refusal), the cost is one pass over the stream:
    reverse-ordered shards are read in archive order, not by seeking back."""
    path = hostile_shards_targz(tmp_path / "h.tar.gz", 16, pad_bytes=60_000_000)
    start = time.process_time()
    with gzip.open(path) as f:
        while f.read(1024 * 1024):
            pass
    one_pass = time.process_time() - start
    start = time.process_time()
    with pytest.raises(ArchiveError) as info:
        inspect_archive(path, "tar.gz", **LIMITS)
    cost = time.process_time() - start
    # Every shard's header was read: the shards hold none of the config's parameters.
    assert info.value.code == "weights_mismatch", info.value.message
    assert cost < 3 * one_pass + 0.2, (cost, one_pass)
