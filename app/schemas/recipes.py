"""Recipe responses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.recipes import Recipe


class RecipeOut(BaseModel):
    name: str
    version: int
    ref: str = Field(description="name@version, as a job spec's `recipe` may pin it.")
    description: str
    spec: dict[str, Any] = Field(description="The partial job spec the recipe applies.")

    @classmethod
    def of(cls, r: Recipe) -> RecipeOut:
        return cls(name=r.name, version=r.version, ref=r.ref, description=r.description,
                   spec=r.spec)  # fmt: skip


class RecipeList(BaseModel):
    items: list[RecipeOut]
