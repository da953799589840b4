"""Path and query parameters several routers take, each with its description."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

JobId = Annotated[str, Path(description="The job's id (a UUID, as POST /v1/jobs returned it).")]
ModelId = Annotated[str, Path(description="The uploaded model's id (a UUID).")]
DatasetId = Annotated[str, Path(description="The uploaded data set's id (a UUID).")]
ArtifactId = Annotated[str, Path(description="The artifact's id (a UUID; see its download_url).")]
DeliveryId = Annotated[str, Path(description="The webhook delivery's id (a UUID).")]
RecipeRef = Annotated[
    str, Path(description="A recipe's `name` (its latest version) or `name@version`.")
]

Limit = Annotated[
    int | None,
    Query(
        ge=1,
        description="Items per page: 1 to the server's MAX_PAGE_SIZE (200 unless set; "
        "default: DEFAULT_PAGE_SIZE, 50 unless set).",
    ),
]
PageToken = Annotated[
    str | None,
    Query(
        max_length=512,
        description="Go on from a previous page: its next_page_token (absent: the first page).",
    ),
]
