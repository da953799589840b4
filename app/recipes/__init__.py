"""Versioned built-in recipes (app.recipes.builtin) and how a job spec names one.

A spec may say `"recipe": "obert-80"` (the latest version) or `"obert-80@1"`; its other
fields are deep-merged over the recipe's, and the result is what is validated and stored,
with `recipe` pinned to name@version."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from app.catalog import DEFAULT_TASK, TASK_FACTS
from app.recipes.builtin import BUILTIN


@dataclass(frozen=True)
class Recipe:
    name: str
    version: int
    description: str
    spec: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class UnknownRecipe(ValueError):
    pass


RECIPES: tuple[Recipe, ...] = tuple(Recipe(*row) for row in BUILTIN)


def latest() -> list[Recipe]:
    """Each recipe's newest version, by name."""
    best: dict[str, Recipe] = {}
    for r in RECIPES:
        if r.name not in best or r.version > best[r.name].version:
            best[r.name] = r
    return sorted(best.values(), key=lambda r: r.name)


def find(ref: str) -> Recipe:
    """`name` (latest) or `name@version`; UnknownRecipe otherwise."""
    name, at, version = ref.partition("@")
    for r in latest() if not at else RECIPES:
        if r.name == name and (not at or str(r.version) == version):
            return r
    known = ", ".join(r.name for r in latest())
    raise UnknownRecipe(f"unknown recipe {ref!r}; known: {known} (optionally name@version)")


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` wins; dicts merge key by key, except a dict whose "kind" differs (a different
    variant, e.g. a oneshot schedule over a gradual one) replaces the base's."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        old = out.get(key)
        if (
            isinstance(old, dict)
            and isinstance(value, dict)
            and old.get("kind", value.get("kind")) == value.get("kind", old.get("kind"))
        ):
            out[key] = deep_merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def task_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """The spec fields the raw spec's task sets by default (app.catalog), nested."""
    task = raw.get("task", DEFAULT_TASK)
    facts = next((f for name, f in TASK_FACTS.items() if name == task), None)
    out: dict[str, Any] = {}
    for path, value in (facts.defaults if facts else {}).items():
        *parents, leaf = path.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """The raw spec with its recipe and its task's defaults applied: the recipe, then the
    task's defaults over it (a recipe is task-agnostic; QA trains at its own learning rate),
    then the spec's own fields over both. An unknown recipe is left for the `recipe` field's
    own check to report."""
    ref = raw.get("recipe")
    recipe: Recipe | None = None
    if isinstance(ref, str):
        try:
            recipe = find(ref)
        except UnknownRecipe:
            return raw
    base = deep_merge(recipe.spec if recipe else {}, task_defaults(raw))
    if not base:
        return raw
    merged = deep_merge(base, {k: v for k, v in raw.items() if k != "recipe"})
    if recipe is not None:
        merged["recipe"] = recipe.ref
    return merged


def check_ref(ref: str | None) -> str | None:
    """The field validator: a known ref, pinned to name@version."""
    return None if ref is None else find(ref).ref
