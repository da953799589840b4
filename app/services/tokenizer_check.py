"""Check an uploaded model's tokenizer files at upload, without torch or transformers, so that
a broken one is a 422 naming the file rather than a job that fails at its load stage.

tokenizer.json is loaded with the `tokenizers` library (what transformers builds its fast
tokenizer with) and must hold the `added_tokens` transformers reads; the slow files are
checked as far as is cheap: vocab.txt is UTF-8 text with tokens, vocab.json an object of ids,
merges.txt pairs, a SentencePiece model starts like the protobuf it is, the tokenizer's JSON
configs are objects. A Git LFS pointer committed in place of a file is named as such. A file
over its size bound is not checked here (the job's load reports it).
"""

from __future__ import annotations

from tokenizers import Tokenizer

from app.services.json_input import JsonInputError, loads

TOKENIZER_JSON = "tokenizer.json"
SENTENCEPIECE = ("spm.model", "sentencepiece.bpe.model")
CONFIGS = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
MIB = 1024 * 1024
# Bytes read of each file: all of it (under the bound) or, for SentencePiece, its head.
READ_BYTES: dict[str, int] = {
    TOKENIZER_JSON: 64 * MIB,  # multilingual ones are 10 to 20 MB
    "vocab.txt": 16 * MIB,
    "vocab.json": 16 * MIB,
    "merges.txt": 16 * MIB,
    **{name: 64 for name in SENTENCEPIECE},
    **{name: 4 * MIB for name in CONFIGS},
}
LFS_POINTER = b"version https://git-lfs.github.com/spec/"


class TokenizerInvalid(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def checks_whole(name: str) -> bool:
    """Whether the check needs the whole file (else its first READ_BYTES bytes)."""
    return name not in SENTENCEPIECE


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TokenizerInvalid(f"not UTF-8 text (byte {exc.start + 1})") from exc


def _json_object(data: bytes) -> dict[str, object]:
    try:
        value = loads(data)
    except JsonInputError as exc:
        raise TokenizerInvalid(exc.message) from exc
    if not isinstance(value, dict):
        raise TokenizerInvalid("not a JSON object")
    return value


def _tokenizer_json(data: bytes) -> None:
    doc = _json_object(data)
    try:
        Tokenizer.from_str(data.decode("utf-8"))
    except Exception as exc:  # the Rust side raises a bare Exception
        raise TokenizerInvalid(f"the tokenizers library cannot load it: {exc}") from exc
    if not isinstance(doc.get("added_tokens"), list):
        raise TokenizerInvalid("no `added_tokens` list (transformers reads it)")


def _vocab_txt(data: bytes) -> None:
    if not any(line.strip() for line in _text(data).splitlines()):
        raise TokenizerInvalid("no tokens")


def _vocab_json(data: bytes) -> None:
    vocab = _json_object(data)
    if not vocab:
        raise TokenizerInvalid("an empty vocabulary")
    odd = next((k for k, v in vocab.items() if type(v) is not int or v < 0), None)
    if odd is not None:
        raise TokenizerInvalid(f"token {odd[:40]!r} has no integer id")


def _merges_txt(data: bytes) -> None:
    for number, line in enumerate(_text(data).splitlines(), 1):
        if line.strip() and not (number == 1 and line.startswith("#")) and len(line.split()) != 2:
            raise TokenizerInvalid(f"line {number} is not a pair of symbols: {line[:40]!r}")


def _varint(data: bytes, at: int) -> tuple[int, int] | None:
    value = shift = 0
    for i in range(at, min(len(data), at + 10)):
        value |= (data[i] & 0x7F) << shift
        if not data[i] & 0x80:
            return value, i + 1
        shift += 7
    return None


def _sentencepiece(head: bytes, size: int) -> None:
    """A ModelProto's first field is its first piece (field 1, length-delimited), whose own
    first field is the piece's text (field 1, length-delimited)."""
    first = _varint(head, 1) if head[:1] == b"\x0a" else None
    if first is None or first[0] > size - first[1] or head[first[1] : first[1] + 1] != b"\x0a":
        raise TokenizerInvalid("not a SentencePiece model (its protobuf pieces are missing)")


def check(name: str, data: bytes, size: int) -> None:
    """Raise TokenizerInvalid for a broken file; `name` is its base name, `data` all of it
    (or its head, when checks_whole says so), `size` its full size."""
    if data.startswith(LFS_POINTER):
        raise TokenizerInvalid("a Git LFS pointer, not the file (run `git lfs pull`)")
    if not data.strip():
        raise TokenizerInvalid("empty")
    if name == TOKENIZER_JSON:
        _tokenizer_json(data)
    elif name == "vocab.txt":
        _vocab_txt(data)
    elif name == "vocab.json":
        _vocab_json(data)
    elif name == "merges.txt":
        _merges_txt(data)
    elif name in SENTENCEPIECE:
        _sentencepiece(data, size)
    elif name in CONFIGS:
        _json_object(data)


def files_used(present: set[str], sets: tuple[tuple[str, ...], ...]) -> list[str]:
    """The tokenizer files transformers loads, of those present (base names): tokenizer.json
    when there is one (it wins over the slow files), else the first complete set of the
    family's; and the tokenizer's JSON configs."""
    if TOKENIZER_JSON in present:
        main: tuple[str, ...] = (TOKENIZER_JSON,)
    else:
        main = next((s for s in sets if all(n in present for n in s)), ())
    return [n for n in (*main, *CONFIGS) if n in present]
