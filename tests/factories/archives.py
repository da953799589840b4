"""Build tiny Hugging Face BERT model folders and archives (good and hostile) in code."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie"]


def bert_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "model_type": "bert",
        "architectures": ["BertForSequenceClassification"],
        "hidden_size": 8,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 16,
        "vocab_size": len(VOCAB),
        "max_position_embeddings": 512,
        "id2label": {"0": "negative", "1": "positive"},
        "label2id": {"negative": 0, "positive": 1},
    }
    config.update(overrides)
    return config


def tensors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "bert.embeddings.word_embeddings.weight": rng.standard_normal((len(VOCAB), 8)).astype(
            np.float32
        ),
        "bert.encoder.layer.0.attention.self.query.weight": rng.standard_normal((8, 8)).astype(
            np.float32
        ),
        "classifier.weight": rng.standard_normal((2, 8)).astype(np.float32),
        "classifier.bias": np.zeros(2, dtype=np.float32),
    }


def num_parameters(seed: int = 0) -> int:
    return sum(int(t.size) for t in tensors(seed).values())


def model_files(
    *,
    config: dict[str, Any] | None = None,
    weights: str = "single",
    tokenizer: str | None = "vocab",
    extra: dict[str, bytes] | None = None,
) -> dict[str, bytes]:
    """File name -> content for a model folder. weights: single | sharded | none."""
    files: dict[str, bytes] = {"config.json": json.dumps(config or bert_config()).encode()}
    ts = tensors()
    if weights == "single":
        files["model.safetensors"] = _safetensors_bytes(ts)
    elif weights == "sharded":
        names = sorted(ts)
        half = len(names) // 2
        shards = {
            "model-00001-of-00002.safetensors": {n: ts[n] for n in names[:half]},
            "model-00002-of-00002.safetensors": {n: ts[n] for n in names[half:]},
        }
        weight_map = {}
        for shard, part in shards.items():
            files[shard] = _safetensors_bytes(part)
            weight_map.update({n: shard for n in part})
        files["model.safetensors.index.json"] = json.dumps(
            {"metadata": {}, "weight_map": weight_map}
        ).encode()
    if tokenizer == "vocab":
        files["vocab.txt"] = ("\n".join(VOCAB) + "\n").encode()
    elif tokenizer == "json":
        files["tokenizer.json"] = json.dumps({"model": {"vocab": VOCAB}}).encode()
    files.update(extra or {})
    return files


def _safetensors_bytes(ts: dict[str, np.ndarray]) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.safetensors"
        save_file(ts, str(path))
        return path.read_bytes()


def zip_bytes(files: dict[str, bytes], *, prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(prefix + name, data)
    return buf.getvalue()


def targz_bytes(files: dict[str, bytes], *, prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        if prefix:
            info = tarfile.TarInfo(prefix.rstrip("/"))
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tf.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_with_symlink(files: dict[str, bytes], link: str, target: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        info = zipfile.ZipInfo(link)
        info.external_attr = (0o120777 << 16) | 0  # S_IFLNK
        info.create_system = 3  # unix
        zf.writestr(info, target)
    return buf.getvalue()


def targz_with_special(files: dict[str, bytes], name: str, kind: bytes, target: str = "") -> bytes:
    """kind: tarfile.SYMTYPE, LNKTYPE, CHRTYPE, BLKTYPE or FIFOTYPE."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for fname, data in files.items():
            info = tarfile.TarInfo(fname)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        special = tarfile.TarInfo(name)
        special.type = kind
        special.linkname = target
        tf.addfile(special)
    return buf.getvalue()


def zip_with_corrupt_member(files: dict[str, bytes], name: str) -> bytes:
    """A zip whose central directory is intact but whose member `name` has garbage
    compressed data (a bad deflate stream or a CRC mismatch)."""
    data = bytearray(zip_bytes(files))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo(name)
    # Local header: 30 bytes + name + extra; then the compressed data.
    name_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    for i in range(start, start + min(info.compress_size, 64)):
        data[i] ^= 0x5A
    return bytes(data)
