"""Recipes: versioned built-in presets a job spec may name (`"recipe": "obert-80"`)."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import CallerDep, KnownQueryOnly
from app.openapi import problems
from app.routes.params import RecipeRef
from app.schemas.recipes import RecipeList, RecipeOut
from app.services import recipes as service

router = APIRouter(tags=["recipes"])


@router.get(
    "/v1/recipes", response_model=RecipeList, responses=problems(422),
    dependencies=[KnownQueryOnly],
)  # fmt: skip
def list_recipes(caller: CallerDep) -> RecipeList:
    """Each recipe's latest version."""
    return RecipeList(items=[RecipeOut.of(r) for r in service.list_latest()])


@router.get("/v1/recipes/{name}", response_model=RecipeOut, responses=problems(404))
def get_recipe(name: RecipeRef, caller: CallerDep) -> RecipeOut:
    """`name` (latest version) or `name@version`."""
    return RecipeOut.of(service.get(name))
