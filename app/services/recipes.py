"""Built-in recipes: listing and lookup (the catalogue is app.recipes, not the database)."""

from __future__ import annotations

from app import recipes
from app.errors import NotFound


def list_latest() -> list[recipes.Recipe]:
    return recipes.latest()


def get(ref: str) -> recipes.Recipe:
    """`name` (latest version) or `name@version`."""
    try:
        return recipes.find(ref)
    except recipes.UnknownRecipe as e:
        raise NotFound(str(e), code="recipe_not_found") from e
