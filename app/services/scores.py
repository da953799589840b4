"""The float targets of a regression data set, read by one rule: the API calls it when a
regression data set is uploaded and the worker when it reads the file for a job, so a file
the upload accepted is one the job can train on.

- Surrounding whitespace never matters: `" 3.8"` is 3.8.
- A score is a plain decimal number in ASCII digits (`3`, `-0.5`, `.25`, `1e-3`), written as
  text in a CSV/TSV cell or as a JSON number in JSONL (`app.services.tabular` gives a JSON
  number as its text); NaN, infinities, hex, digit separators (`1_000`), other scripts'
  digits and booleans are refused, and so is a number too large for a float.
"""

from __future__ import annotations

import math
import re

# A plain decimal in ASCII digits: Python's float() would also take "nan", "inf", "1_000" and
# non-ASCII digits, none of which is a score a user means.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_MAX_CHARS = 64  # longer than any float written out in full, short enough to show


class ScoreError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _shown(raw: str) -> str:
    """The value as written, cut for a message."""
    return repr(raw if len(raw) <= _MAX_CHARS else raw[:_MAX_CHARS] + "...")


def parse_score(raw: str) -> float:
    """The finite float a cell holds; raises ScoreError for an empty cell or anything that is
    not a plain decimal number (see the module docstring)."""
    text = raw.strip()
    if not text:
        raise ScoreError("an empty score")
    if len(text) > _MAX_CHARS or not _NUMBER.fullmatch(text):
        raise ScoreError(f"score {_shown(raw)} is not a number")
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e999
        raise ScoreError(f"score {_shown(raw)} is too large for a float")
    return value


def check_range(value: float, low: float, high: float) -> None:
    """Raises ScoreError unless low <= value <= high (both ends included)."""
    if not low <= value <= high:
        raise ScoreError(f"score {value:g} is outside the range [{low:g}, {high:g}]")
