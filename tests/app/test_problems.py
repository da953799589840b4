from __future__ import annotations

from typing import Any

import pytest

from app.problems import field_path

BODY = {"pruning": {"schedule": {"kind": "gradual"}, "sparsity": 2}, "dataset": {"text_columns":
        ["a", 3]}}  # fmt: skip


@pytest.mark.parametrize(
    ("loc", "body", "field"),
    [
        (("body", "pruning", "sparsity"), BODY, "pruning.sparsity"),
        (("body", "pruning", "schedule", "gradual"), BODY, "pruning.schedule"),
        (("body", "pruning", "schedule", "gradual", "epochs"), BODY, "pruning.schedule.epochs"),
        (("body", "dataset", "text_columns", 1), BODY, "dataset.text_columns[1]"),
        (("body", "model"), BODY, "model"),
        (("body",), BODY, None),
        (("body", 12), "{bad json", None),
        (("query", "limit"), None, "limit"),
        ((), None, None),
    ],
)
def test_field_path(loc: tuple[Any, ...], body: Any, field: str | None) -> None:
    assert field_path(loc, body) == field
