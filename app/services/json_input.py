"""Parse JSON that a user sent (config.json, a safetensors header, a JSONL line, an index
file) with bounds, so that hostile input is a clear error and never a 500.

The standard library raises RecursionError on deep nesting and ValueError on integers longer
than ``sys.int_info.default_max_str_digits``; neither is a JSONDecodeError. Here every
refusal is a ``JsonInputError`` with a message a person can act on: nesting deeper than
``max_depth``, an integer with more than ``max_int_digits`` digits (no value a model config,
a header offset or a data set cell needs is longer than 2**64), NaN or Infinity, or invalid
JSON (with the position).
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64
MAX_INT_DIGITS = 20
# Each ASCII digit (the only digits a JSON number has) to b"1", every other byte to b"0".
_DIGIT_MASK = bytes(49 if 48 <= b <= 57 else 48 for b in range(256))


class JsonInputError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _check_depth(value: Any, max_depth: int) -> None:
    """Depth of the parsed value, walked level by level over its containers only: each step
    visits a list or dict that json.loads has just built, so the walk costs a small multiple
    of the parse itself, never a pass over the characters."""
    level: list[Any] = [value]
    for _ in range(max_depth):
        deeper: list[Any] = []
        add = deeper.append
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    add(child)
        if not deeper:
            return
        level = deeper
    raise JsonInputError(f"nested deeper than {max_depth} levels")


def loads(
    raw: str | bytes, *, max_depth: int = MAX_DEPTH, max_int_digits: int = MAX_INT_DIGITS
) -> Any:
    """Like json.loads, within the bounds; raises JsonInputError."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise JsonInputError(f"not valid UTF-8 (byte {exc.start + 1})") from exc

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > max_int_digits:
            raise JsonInputError(f"an integer with more than {max_int_digits} digits")
        return int(digits)

    def parse_constant(name: str) -> Any:
        raise JsonInputError(f"{name} is not a JSON number")

    try:
        # The per-integer hook only where some run of digits is long enough to need it (C-speed
        # passes over the text): most documents hold only short integers.
        digits = text.encode("utf-8", "surrogatepass").translate(_DIGIT_MASK)
        long_digits = b"1" * (max_int_digits + 1) in digits
        value = json.loads(
            text, parse_int=parse_int if long_digits else None, parse_constant=parse_constant
        )
    except JsonInputError:
        raise
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise JsonInputError(f"not valid JSON: {exc.msg} ({where})") from exc
    except RecursionError as exc:  # deeper than the interpreter's recursion limit
        raise JsonInputError(f"nested deeper than {max_depth} levels") from exc
    except ValueError as exc:  # defensive: the bounds above should catch these
        raise JsonInputError(f"not valid JSON: {exc}") from exc
    # Depth is at most the number of brackets (a C-speed count): most documents skip the walk.
    if isinstance(value, dict | list) and text.count("[") + text.count("{") > max_depth:
        _check_depth(value, max_depth)
    return value
