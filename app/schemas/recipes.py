"""Recipe responses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.recipes import Recipe


class RecipeOut(BaseModel):
    name: str = Field(
        description="The recipe's name: a job spec's `recipe` gives it for the latest version.",
        examples=["obert-80"],
    )
    version: int = Field(description="Its version: 1, 2, 3, ...", examples=[2])
    ref: str = Field(
        description="name@version, as a job spec's `recipe` may pin it.", examples=["obert-80@2"]
    )
    description: str = Field(
        description="What the recipe does.",
        examples=["oBERT gradual pruning to 80% unstructured sparsity, with distillation."],
    )
    spec: dict[str, Any] = Field(
        description="The partial job spec the recipe applies (the job's fields are deep-merged "
        "over it).",
        examples=[{"pruning": {"method": "obert", "sparsity": 0.8}}],
    )

    @classmethod
    def of(cls, r: Recipe) -> RecipeOut:
        return cls(name=r.name, version=r.version, ref=r.ref, description=r.description,
                   spec=r.spec)  # fmt: skip


class RecipeList(BaseModel):
    items: list[RecipeOut] = Field(description="Each recipe's latest version, by name.")
