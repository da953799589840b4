"""The README's tables name what exists: every built-in recipe at its latest version."""

from __future__ import annotations

import re
from pathlib import Path

from app import recipes

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


def test_the_recipes_table_lists_every_builtin_at_its_latest_version() -> None:
    rows = [line for line in _section("Recipes").splitlines() if line.startswith("| `")]
    named = {ref for row in rows for ref in re.findall(r"`([\w.-]+@\d+)`", row.split("|")[1])}
    assert named == {r.ref for r in recipes.latest()}


def test_the_docs_it_links_exist() -> None:
    root = Path(__file__).resolve().parent.parent
    for target in re.findall(r"\]\(((?:docs|client)/[^)#]+)\)", README):
        assert (root / target).exists(), target
