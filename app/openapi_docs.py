"""What the OpenAPI document says beyond the routes: request examples, and the webhooks a job
sends (OpenAPI 3.1 `webhooks`, Standard Webhooks headers, see app.webhooks.signing). And the
pages that show it, /docs (Swagger UI) and /redoc (ReDoc), whose scripts, styles and icon the
app serves itself, so they work offline (install_docs)."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.schemas.job_spec import JobSpec
from app.schemas.webhook_events import (
    WebhookEvent,
    WebhookPruningStepEvent,
    WebhookRunningEvent,
)

MAGNITUDE_JOB: dict[str, Any] = {
    "model": "minilm-l6",
    "dataset": {"name": "sst2", "max_length": 128},
    "pruning": {"method": "magnitude", "sparsity": 0.5},
    "training": {"epochs": 1, "batch_size": 16},
}
OBERT_GRADUAL_JOB: dict[str, Any] = {
    "model": "minilm-l6",
    "dataset": {"name": "tweets"},
    "pruning": {
        "method": "obert",
        "sparsity": 0.8,
        "structure": "block4",
        "schedule": {"kind": "gradual", "epochs": 2, "pruning_steps": 4},
        "obert": {"num_grads": 64, "block_size": 32},
    },
    "distillation": {"enabled": True, "hardness": 1.0, "temperature": 2.0},
    "quantization": {"method": "dynamic_int8"},
    "webhook_url": "https://example.com/hooks/scalpel",
}
STRUCTURED_JOB: dict[str, Any] = {
    "model": "minilm-l6",
    "dataset": {"name": "sst2"},
    "pruning": {"method": "structured", "structured": {"target_speedup": 2.0, "steps": 3}},
    "distillation": {"enabled": True, "hardness": 1.0, "temperature": 2.0},
}
# Shown once JobSpec has a `recipe` field; tests/app/test_openapi_docs.py then submits it, so
# it must name a recipe that exists (app/recipes).
RECIPE_JOB: dict[str, Any] = {
    "model": "minilm-l6",
    "dataset": {"name": "sst2"},
    "recipe": "obert-80",
}


def job_spec_examples() -> dict[str, dict[str, Any]]:
    examples: dict[str, dict[str, Any]] = {
        "magnitude": {"summary": "One-shot magnitude pruning to 50%", "value": MAGNITUDE_JOB},
        "obert-gradual": {
            "summary": "Gradual oBERT to 80% (block4), distillation, int8",
            "value": OBERT_GRADUAL_JOB,
        },
        "structured": {
            "summary": "Structured pruning to a 2x measured speedup, distillation",
            "value": STRUCTURED_JOB,
        },
    }
    if "recipe" in JobSpec.model_fields:  # once the recipe field exists
        examples["recipe"] = {"summary": "A named recipe", "value": RECIPE_JOB}
    return examples


MODEL_UPLOAD_EXAMPLE = {
    "file": "(a .zip or .tar.gz of a save_pretrained folder: BERT, RoBERTa, XLM-RoBERTa, "
    "DistilBERT, ELECTRA, DeBERTa-v2/v3, MPNet or ModernBERT)",
    "name": "my-encoder",
}
DATASET_UPLOAD_EXAMPLE = {
    "file": "(reviews.csv: text,label rows)",
    "name": "reviews",
    "text_columns": "text",
    "label_column": "label",
    "format": "csv",
}
# (method, path) -> media type -> examples.
REQUEST_EXAMPLES: dict[tuple[str, str], dict[str, dict[str, dict[str, Any]]]] = {
    ("post", "/v1/models"): {
        "multipart/form-data": {"zip": {"summary": "A zipped model", "value": MODEL_UPLOAD_EXAMPLE}}
    },
    ("post", "/v1/datasets"): {
        "multipart/form-data": {"csv": {"summary": "A CSV file", "value": DATASET_UPLOAD_EXAMPLE}}
    },
}


def add_request_examples(schema: dict[str, Any]) -> None:
    """Examples for request bodies the routes do not declare themselves."""
    examples: dict[tuple[str, str], dict[str, dict[str, dict[str, Any]]]] = {
        **REQUEST_EXAMPLES, ("post", "/v1/jobs"): {"application/json": job_spec_examples()},
    }  # fmt: skip
    for (method, path), by_media in examples.items():
        op = schema.get("paths", {}).get(path, {}).get(method)
        if op is None or "requestBody" not in op:
            continue
        content = op["requestBody"].get("content", {})
        for media, media_examples in by_media.items():
            if media in content:
                content[media].setdefault("examples", media_examples)


WebhookId = Annotated[str, Header(alias="webhook-id", description="Unique per message.")]
WebhookTimestamp = Annotated[
    str, Header(alias="webhook-timestamp", description="Unix seconds of this attempt.")
]
WebhookSignature = Annotated[
    str,
    Header(
        alias="webhook-signature",
        description="Space-separated `v1,<base64 HMAC-SHA256>` of "
        "`{webhook-id}.{webhook-timestamp}.{body}`, one per active secret.",
    ),
]
WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Any 2xx acknowledges the delivery; anything else is retried."}
}


def _terminal(
    event_body: Annotated[WebhookEvent, Body()], webhook_id: WebhookId,
    webhook_timestamp: WebhookTimestamp, webhook_signature: WebhookSignature,
) -> None:  # fmt: skip
    """Sent to the job's webhook_url, signed per Standard Webhooks."""


def _running(
    event_body: Annotated[WebhookRunningEvent, Body()], webhook_id: WebhookId,
    webhook_timestamp: WebhookTimestamp, webhook_signature: WebhookSignature,
) -> None:  # fmt: skip
    """Sent to the job's webhook_url when its webhook_events list it, signed alike."""


def _pruning_step(
    event_body: Annotated[WebhookPruningStepEvent, Body()], webhook_id: WebhookId,
    webhook_timestamp: WebhookTimestamp, webhook_signature: WebhookSignature,
) -> None:  # fmt: skip
    """Sent to the job's webhook_url when its webhook_events list it, signed alike."""


EVENTS: dict[str, tuple[str, Callable[..., None]]] = {
    "job.succeeded": ("A job finished; its artifacts can be downloaded.", _terminal),
    "job.failed": ("A job failed; `data.error_code` says why.", _terminal),
    "job.canceled": ("A job was canceled.", _terminal),
    "job.running": ("A worker started the job (on request).", _running),
    "job.pruning_step": ("The job took a pruning step (on request).", _pruning_step),
}


def install_webhooks(app: FastAPI) -> None:
    """Register the webhook documentation once (routes under app.webhooks are never served)."""
    if any(getattr(r, "name", None) in EVENTS for r in app.webhooks.routes):
        return
    for event, (summary, receive) in EVENTS.items():
        app.webhooks.add_api_route(
            event, receive, methods=["POST"], name=event, summary=summary,
            operation_id=f"webhook_{event.replace('.', '_')}", responses=WEBHOOK_RESPONSES,
            status_code=200, tags=["webhooks"],
        )  # fmt: skip


# The Swagger UI (5.x) and ReDoc (2.x) bundles that the fastapi-offline package ships (MIT;
# the bundles keep their own Apache-2.0 and MIT licences): swagger-ui-bundle.js,
# swagger-ui.css, redoc.standalone.js, favicon.png.
DOCS_ASSETS_DIR = str(files("fastapi_offline").joinpath("static"))
DOCS_ASSETS_URL = "/docs/assets"
# No validator badge: Swagger UI would send the document's URL to validator.swagger.io.
SWAGGER_UI_PARAMETERS: dict[str, Any] = {"validatorUrl": None}


def install_docs(app: FastAPI) -> None:
    """/docs and /redoc on the app's own assets (the app is made with docs_url=None and
    redoc_url=None); every URL in the pages is under the app's root path."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    def urls(request: Request) -> tuple[str, str]:
        root = request.scope.get("root_path", "")
        return f"{root}{openapi_url}", f"{root}{DOCS_ASSETS_URL}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        spec, assets = urls(request)
        return get_swagger_ui_html(
            openapi_url=spec, title=f"{app.title} - Swagger UI", oauth2_redirect_url=None,
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )  # fmt: skip

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        spec, assets = urls(request)
        return get_redoc_html(
            openapi_url=spec, title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png", with_google_fonts=False,
        )  # fmt: skip
