"""Checkpoints of a job, so a redelivered job (after a worker crash) resumes where it stopped.

Layout under `<work_dir>/<job id>/checkpoints/`: one folder per saved checkpoint
(`<kind>-<n>/`: `*.safetensors` tensors, `meta.json`, optionally `optimizer.pt` and
`scheduler.pt`), and a pointer `<kind>.json` naming the latest folder of each kind. A folder is
complete before its pointer is replaced (temp file + rename), so a crash mid-write leaves the
previous checkpoint in force; older folders of the kind are then removed. Kinds: `stage` (after
each completed stage) and `prune_step` (after each pruning step of a gradual run).

Model weights are safetensors; optimizer and scheduler states are `torch.save`d and loaded with
`weights_only=True`. A checkpoint written for a different spec is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger(__name__)

META = "meta.json"
OPTIMIZER = "optimizer.pt"
SCHEDULER = "scheduler.pt"
KINDS = ("stage", "prune_step")


def spec_digest(spec_json: str) -> str:
    return hashlib.sha256(spec_json.encode("utf-8")).hexdigest()


def plain_tensors(sd: Mapping[str, Any]) -> dict[str, Tensor]:
    """Contiguous CPU copies (no shared storage), as safetensors needs."""
    return {
        k: v.detach().cpu().contiguous().clone() for k, v in sd.items() if isinstance(v, Tensor)
    }


def rng_state() -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Torch (tensor) and Python (JSON) random states."""
    version, internal, gauss = random.getstate()
    return {"torch_cpu": torch.get_rng_state()}, {"python": [version, list(internal), gauss]}


def set_rng_state(tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> None:
    if "torch_cpu" in tensors:
        torch.set_rng_state(tensors["torch_cpu"].to(torch.uint8))
    py = meta.get("python")
    if py:
        random.setstate((py[0], tuple(py[1]), py[2]))


@dataclass
class Checkpoint:
    kind: str
    folder: Path
    meta: dict[str, Any]

    def tensors(self, name: str) -> dict[str, Tensor]:
        from safetensors.torch import load_file

        path = self.folder / f"{name}.safetensors"
        return load_file(str(path)) if path.exists() else {}

    def torch_state(self, name: str) -> Any:
        path = self.folder / name
        if not path.exists():
            return None
        return torch.load(path, map_location="cpu", weights_only=True)


class Checkpoints:
    """The checkpoints of one job (of one spec)."""

    def __init__(self, root: Path, digest: str) -> None:
        self.root = root
        self.digest = digest

    def _pointer(self, kind: str) -> Path:
        return self.root / f"{kind}.json"

    def save(
        self,
        kind: str,
        meta: Mapping[str, Any],
        tensors: Mapping[str, Mapping[str, Tensor]],
        torch_states: Mapping[str, Any] | None = None,
    ) -> Path:
        from safetensors.torch import save_file

        self.root.mkdir(parents=True, exist_ok=True)
        previous = self.latest(kind)
        seq = int(previous.meta.get("seq", 0)) + 1 if previous else 1
        folder = self.root / f"{kind}-{seq}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, sd in tensors.items():
            save_file(plain_tensors(sd), str(folder / f"{name}.safetensors"))
        for name, obj in (torch_states or {}).items():
            torch.save(obj, folder / name)
        full = {**meta, "kind": kind, "seq": seq, "spec_digest": self.digest}
        (folder / META).write_text(json.dumps(full, indent=1) + "\n", encoding="utf-8")
        tmp = self.root / f".{kind}.json.tmp"
        tmp.write_text(json.dumps({"folder": folder.name}), encoding="utf-8")
        os.replace(tmp, self._pointer(kind))
        for old in self.root.glob(f"{kind}-*"):
            if old.name != folder.name:
                shutil.rmtree(old, ignore_errors=True)
        log.info("checkpoint %s saved (%s)", folder.name, meta.get("stage"))
        return folder

    def latest(self, kind: str) -> Checkpoint | None:
        pointer = self._pointer(kind)
        try:
            name = json.loads(pointer.read_text(encoding="utf-8"))["folder"]
            folder = self.root / str(name)
            meta = json.loads((folder / META).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if meta.get("spec_digest") != self.digest:
            log.warning("ignoring checkpoint %s written for another spec", folder)
            return None
        return Checkpoint(kind, folder, meta)

    def drop(self, kind: str) -> None:
        self._pointer(kind).unlink(missing_ok=True)
        for old in self.root.glob(f"{kind}-*"):
            shutil.rmtree(old, ignore_errors=True)

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.root.parent.rmdir()  # the job's folder, when nothing else is left in it
