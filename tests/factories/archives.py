"""Build tiny Hugging Face encoder model folders and archives (good and hostile) in code,
of any family in the architecture table (BERT by default), without torch: config.json as
save_pretrained writes it, safetensors weights of every parameter the family's table entry
and its sequence-classification head give (tests/app/architectures/test_coverage.py holds
them to transformers' own), and the family's tokenizer files."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie"]
LABELS: dict[str, Any] = {
    "id2label": {"0": "negative", "1": "positive"},
    "label2id": {"negative": 0, "positive": 1},
}
# What each family's tiny config holds beyond its sizes: the options that change its
# parameter set (ELECTRA's narrower embeddings, DeBERTa-v3's shared relative attention).
FAMILY_CONFIGS: dict[str, dict[str, Any]] = {
    "bert": {"architectures": ["BertForSequenceClassification"]},
    "roberta": {"architectures": ["RobertaForSequenceClassification"], "type_vocab_size": 1,
                "pad_token_id": 1},
    "xlm-roberta": {"architectures": ["XLMRobertaForSequenceClassification"],
                    "type_vocab_size": 1, "pad_token_id": 1},
    "electra": {"architectures": ["ElectraForSequenceClassification"], "embedding_size": 4},
    "distilbert": {"architectures": ["DistilBertForSequenceClassification"]},
    "deberta-v2": {
        "architectures": ["DebertaV2ForSequenceClassification"], "type_vocab_size": 0,
        "relative_attention": True, "pos_att_type": ["p2c", "c2p"], "share_att_key": True,
        "position_biased_input": False, "norm_rel_ebd": "layer_norm", "position_buckets": 8,
        "max_relative_positions": -1, "pooler_hidden_size": 8,
    },
    "mpnet": {"architectures": ["MPNetForSequenceClassification"], "pad_token_id": 1},
    "modernbert": {"architectures": ["ModernBertForSequenceClassification"], "pad_token_id": 0,
                   "bos_token_id": 2, "eos_token_id": 3, "cls_token_id": 2, "sep_token_id": 3,
                   "global_attn_every_n_layers": 2, "local_attention": 16},
}  # fmt: skip
FAMILIES = tuple(FAMILY_CONFIGS)
# The family's own tokenizer files (tokenizer.json is accepted for every family).
NATIVE_TOKENIZER = {
    "bert": "vocab", "roberta": "bpe", "xlm-roberta": "sentencepiece", "electra": "vocab",
    "distilbert": "vocab", "deberta-v2": "spm", "mpnet": "vocab", "modernbert": "json",
}  # fmt: skip


def family_config(family: str = "bert", **overrides: Any) -> dict[str, Any]:
    """A tiny config.json of `family` (hidden 8, 2 layers, 2 heads, FFN 16), keyed as the
    family's config class saves it (DistilBERT: dim, n_layers, n_heads, hidden_dim)."""
    from app.architectures import ARCHITECTURES

    keys = ARCHITECTURES[family].keys
    config: dict[str, Any] = {
        "model_type": ARCHITECTURES[family].model_types[0],
        keys.hidden: 8, keys.layers: 2, keys.heads: 2, keys.ffn: 16, keys.vocab: len(VOCAB),
        "max_position_embeddings": 512, **FAMILY_CONFIGS[family], **LABELS,
    }  # fmt: skip
    config.update(overrides)
    return config


def bert_config(**overrides: Any) -> dict[str, Any]:
    return family_config("bert", **overrides)


def head_shapes(family: str, h: int, labels: int) -> dict[str, tuple[int, ...]]:
    """The sequence-classification head of `family` (model root), BERT's pooler included."""
    out = {"classifier.weight": (labels, h), "classifier.bias": (labels,)}
    dense = {
        "bert": "bert.pooler.dense", "distilbert": "pre_classifier", "deberta-v2": "pooler.dense",
        "modernbert": "head.dense",
    }.get(family, "classifier.dense")  # fmt: skip
    if dense == "classifier.dense":  # RoBERTa's, ELECTRA's and MPNet's two-layer classifier
        out = {"classifier.out_proj.weight": (labels, h), "classifier.out_proj.bias": (labels,)}
    out |= {f"{dense}.weight": (h, h)}
    if family == "modernbert":  # no dense bias, a norm without bias (the config's defaults)
        return out | {"head.norm.weight": (h,)}
    return out | {f"{dense}.bias": (h,)}


def _layout(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor the family's *ForSequenceClassification has for this config (the
    default BERT config's when this one is invalid, unsupported or large: the tests that
    send those expect a refusal first)."""
    from app.architectures import UnsupportedArchitecture, architecture_for

    try:
        arch = architecture_for(config)
        c = arch.config(config)
        enc = arch.parameters(c)
        h, labels = c.hidden, len(config.get("id2label") or {}) or 2
    except (KeyError, TypeError, ValueError, AttributeError, UnsupportedArchitecture):
        return _layout(bert_config())
    if sum(int(np.prod(s)) for s in enc.values()) > 2_000_000 and config != bert_config():
        return _layout(bert_config())
    shapes = {f"{arch.base_prefix}{k}": s for k, s in enc.items()}
    return shapes | head_shapes(arch.family, h, labels)


def tensors(
    seed: int = 0, config: dict[str, Any] | None = None, family: str = "bert"
) -> dict[str, np.ndarray]:
    """Random float32 weights for every parameter of the config (the family's tiny one by
    default)."""
    rng = np.random.default_rng(seed)
    return {
        name: rng.standard_normal(shape).astype(np.float32)
        for name, shape in sorted(_layout(config or family_config(family)).items())
    }


def num_parameters(
    seed: int = 0, config: dict[str, Any] | None = None, family: str = "bert"
) -> int:
    return sum(int(t.size) for t in tensors(seed, config, family).values())


def wordpiece_tokenizer_json() -> bytes:
    """A real tokenizer.json (the `tokenizers` library's) over VOCAB."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok.to_str().encode()


def tokenizer_files(kind: str | None) -> dict[str, bytes]:
    """kind: vocab (WordPiece vocab.txt), json (tokenizer.json), bpe (vocab.json and
    merges.txt), sentencepiece (sentencepiece.bpe.model), spm (spm.model) or None."""
    vocab = json.dumps({t: i for i, t in enumerate(VOCAB)}).encode()
    spm = b"\n\x0b\n\x05[PAD]\x15\x00\x00\x00\x00\x18\x03"  # a SentencePiece proto's start
    return {
        "vocab": {"vocab.txt": ("\n".join(VOCAB) + "\n").encode()},
        "json": {"tokenizer.json": wordpiece_tokenizer_json()},
        "bpe": {"vocab.json": vocab, "merges.txt": b"#version: 0.2\ng o\n"},
        "sentencepiece": {"sentencepiece.bpe.model": spm},
        "spm": {"spm.model": spm},
    }.get(kind or "", {})


def model_files(
    *,
    family: str = "bert",
    config: dict[str, Any] | None = None,
    weights: str = "single",
    tokenizer: str | None = "native",
    extra: dict[str, bytes] | None = None,
) -> dict[str, bytes]:
    """File name -> content for a model folder of `family` (the config's model_type, when a
    config is given, chooses the weights). weights: single | sharded | none. tokenizer:
    native (the family's own files), one of tokenizer_files' kinds, or None."""
    from app.architectures import BY_MODEL_TYPE

    if config is not None and config.get("model_type") in BY_MODEL_TYPE:
        family = BY_MODEL_TYPE[config["model_type"]].family
    config = config or family_config(family)
    files: dict[str, bytes] = {"config.json": json.dumps(config).encode()}
    ts = tensors(0, config)
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
    files |= tokenizer_files(NATIVE_TOKENIZER[family] if tokenizer == "native" else tokenizer)
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


def _zero_safetensors(name: str, size: int) -> bytes:
    """The header of a safetensors file holding one U8 tensor of `size` zero bytes."""
    header = json.dumps({name: {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}})
    raw = header.encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw


def _zero_shard_header(name: str, file_size: int) -> bytes:
    """The header of a `file_size`-byte safetensors file of one U8 tensor of zeros."""
    data = file_size
    for _ in range(4):  # the header's length depends on the digits of the data's length
        data = file_size - len(_zero_safetensors(name, data))
    header = _zero_safetensors(name, data)
    assert len(header) + data == file_size
    return header


def hostile_shards_targz(dest: Path, shards: int, *, pad_bytes: int = 540_000_000) -> Path:
    """A small .tar.gz (about 525 KB) of zero padding: `shards` safetensors shards (each a U8
    tensor of zeros, `pad_bytes` in all) stored in reverse name order, after the config,
    tokenizer and index. Reading the shards in name order from a streamed gzip seeks backwards
    each time. Written as concatenated gzip members (one gzip stream to a reader) so that the
    zeros are compressed once."""
    each = pad_bytes // shards
    names = [f"model-{i:05d}-of-{shards:05d}.safetensors" for i in range(1, shards + 1)]
    index = {"metadata": {}, "weight_map": {f"pad.{i}": n for i, n in enumerate(names)}}
    small = {**model_files(weights="none"), "model.safetensors.index.json":
             json.dumps(index).encode()}  # fmt: skip
    mib = 1024 * 1024
    zeros_mib = gzip.compress(bytes(mib), 9)
    with dest.open("wb") as out:
        for fname, data in small.items():
            out.write(gzip.compress(_tar_entry(fname, data, len(data)), 9))
        for i in reversed(range(shards)):
            header = _zero_shard_header(f"pad.{i}", each)
            out.write(gzip.compress(_tar_entry(names[i], header, each), 9))
            full, rest = divmod(each - len(header), mib)
            out.write(zeros_mib * full)
            out.write(gzip.compress(bytes(rest + (-each % tarfile.BLOCKSIZE)), 9))
        out.write(gzip.compress(bytes(2 * tarfile.BLOCKSIZE), 9))
    return dest


def _tar_entry(name: str, head: bytes, size: int) -> bytes:
    """A tar header for a `size`-byte file, then the file's first bytes `head` (all of it,
    padded to the block, when it is the whole file)."""
    info = tarfile.TarInfo(name)
    info.size = size
    body = head + (bytes(-size % tarfile.BLOCKSIZE) if len(head) == size else b"")
    return info.tobuf(tarfile.PAX_FORMAT) + body
