"""The classes of a data set's label column, decided in one place: the API calls
`normalize_labels` when a data set is uploaded (the labels it records) and the worker calls it
when it reads the file for a job (the label ids it trains with), so both always agree.

- Surrounding whitespace never matters: `" pos"` is `pos`.
- When every label is a plain decimal number, labels are numbers: `1`, `1.0`, `+1`, `01` and
  `1e0` are one class, named `1`; a label with a fraction keeps its shortest form (`0.50` is
  `0.5`); classes are ordered by value (`2` before `10`).
- Otherwise labels are text, ordered as text, and two labels that are the same number written
  two ways (`1` and `1.0` next to `neg`) are refused, naming both: which one the writer meant
  cannot be told, and silently making two classes of them trains on a split class.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

# A plain decimal in ASCII digits (no NaN, Infinity, hex, underscores or other scripts'
# digits), short and with a modest exponent, so that its canonical form costs nothing.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
_MAX_NUMBER_CHARS = 40
_MAX_MAGNITUDE = 40  # decimal digits either side of the point


class LabelError(ValueError):
    def __init__(self, message: str, values: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.values = values  # the labels at fault, as written


@dataclass(frozen=True)
class Labels:
    names: list[str]  # the classes, in label-id order
    of: dict[str, str]  # each distinct label as written (stripped) -> its class name

    def ids(self) -> dict[str, int]:
        """Each label as written (stripped) -> its label id."""
        index = {name: i for i, name in enumerate(self.names)}
        return {raw: index[name] for raw, name in self.of.items()}


def _number(text: str) -> Decimal | None:
    if len(text) > _MAX_NUMBER_CHARS or not _NUMBER.fullmatch(text):
        return None
    value = Decimal(text)
    if value and not -_MAX_MAGNITUDE <= value.adjusted() <= _MAX_MAGNITUDE:
        return None
    return value


def _canonical(value: Decimal) -> str:
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def normalize_labels(values: Iterable[str]) -> Labels:
    """The classes of these label values (one per row, in any order); raises LabelError for
    an empty label or two spellings of one number among text labels."""
    written = {v.strip() for v in values}
    if "" in written:
        raise LabelError("an empty label", ("",))
    numbers = {w: _number(w) for w in written}
    parsed = {w: n for w, n in numbers.items() if n is not None}
    if len(parsed) == len(written):
        of = {w: _canonical(n) for w, n in parsed.items()}
        by_value = {of[w]: n for w, n in parsed.items()}
        return Labels(sorted(by_value, key=lambda name: by_value[name]), of)
    spellings: dict[str, list[str]] = {}
    for w, n in parsed.items():
        spellings.setdefault(_canonical(n), []).append(w)
    clashes = sorted(sorted(ws) for ws in spellings.values() if len(ws) > 1)
    if clashes:
        shown = " and ".join(repr(w) for w in clashes[0])
        more = f" (and {len(clashes) - 1} more such group(s))" if len(clashes) > 1 else ""
        raise LabelError(
            f"labels {shown} are the same number written differently{more}, among labels "
            "that are not all numbers; write each class one way",
            tuple(clashes[0]),
        )
    return Labels(sorted(written), {w: w for w in written})
