"""The FastAPI application: `uvicorn app.main:app`, or `python -m app serve`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse

from app.admission_state import AdmissionState
from app.body_deadline import BodyDeadline
from app.body_limits import ContentLengthLimit
from app.concurrency import Admission
from app.dashboard.router import router as dashboard_router
from app.deps import KeySessions, default_key_sessions
from app.openapi import install_openapi
from app.openapi_docs import install_docs
from app.problems import install_problem_handlers
from app.request_context import RequestContext
from app.routes import artifacts, datasets, health, jobs, metrics, models, webhooks
from app.routes import recipes as recipes_routes
from app.services.builtin_files import BuiltinsProbe
from app.services.job_cache import JobCache
from app.services.job_notify import JobChangeListener, libpq_url
from app.services.key_cache import KeyCache
from app.services.metrics import log_exposure, takes_api_key
from app.settings import Settings, get_settings

# Multipart framing and the small form fields on top of the file itself.
FORM_OVERHEAD_BYTES = 1024 * 1024
JSON_BODY_LIMIT_BYTES = 1024 * 1024


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Says who may read /metrics; on PostgreSQL, the job cache's change listener runs while
    the app serves."""
    settings: Settings = app.state.settings
    log_exposure(settings)
    listener = None
    if settings.database_url.startswith("postgresql") and settings.job_cache_ttl_s > 0:
        listener = JobChangeListener(libpq_url(settings.database_url), app.state.job_cache)
        listener.start()
    try:
        yield
    finally:
        if listener is not None:
            listener.stop()


async def to_dashboard(request: Request) -> RedirectResponse:
    """GET /: a browser lands on the dashboard, which links the API docs."""
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}{dashboard_router.prefix}/", status_code=307)


def create_app(
    settings: Settings | None = None, *, key_sessions: KeySessions = default_key_sessions
) -> FastAPI:
    """key_sessions: where admission checks API keys (tests give the test's session)."""
    settings = settings or get_settings()
    app = FastAPI(
        lifespan=lifespan,
        title="Scalpel",
        version="0.1.0",
        description="Compression as a service for transformer models.",
        docs_url=None,  # app.openapi_docs serves /docs and /redoc with local assets
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.key_cache = KeyCache(settings.api_key_cache_s)
    app.state.job_cache = JobCache(settings.job_cache_ttl_s)
    app.state.builtins = BuiltinsProbe()
    install_problem_handlers(app)
    model_limit = settings.max_model_upload_bytes + FORM_OVERHEAD_BYTES
    dataset_limit = settings.max_dataset_upload_bytes + FORM_OVERHEAD_BYTES
    app.state.admission = AdmissionState.of(
        requests=settings.max_inflight_requests, uploads=settings.max_inflight_uploads,
        body_reads=settings.max_body_reads, key_checks=settings.max_key_checks,
        wait_s=settings.admission_wait_s, per_key=settings.admission_slots_per_key,
    )  # fmt: skip
    # Added innermost first. A request is checked for its declared size (413), its body is
    # read under a deadline (408), and it is authenticated and given a slot (app.concurrency).
    app.add_middleware(
        Admission, state=app.state.admission, key_cache=app.state.key_cache,
        key_sessions=key_sessions, max_body_bytes=JSON_BODY_LIMIT_BYTES, router=app.router,
        key_optional={"/metrics": partial(takes_api_key, settings)}, exempt=("/healthz",),
    )  # fmt: skip
    app.add_middleware(
        BodyDeadline, idle_timeout_s=settings.body_idle_timeout_s,
        min_rate=settings.body_min_rate_bytes_s, grace_s=settings.body_rate_grace_s,
    )  # fmt: skip
    app.add_middleware(
        ContentLengthLimit,
        default=JSON_BODY_LIMIT_BYTES,
        prefixes={"/v1/models": model_limit, "/v1/datasets": dataset_limit},
    )
    app.add_middleware(RequestContext)  # outermost: every line of a request has its ids
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(jobs.router, max_body_size=JSON_BODY_LIMIT_BYTES)
    app.include_router(models.router, max_body_size=model_limit)
    app.include_router(datasets.router, max_body_size=dataset_limit)
    app.include_router(artifacts.router)
    app.include_router(recipes_routes.router)
    app.include_router(webhooks.router, max_body_size=JSON_BODY_LIMIT_BYTES)
    app.include_router(dashboard_router)  # /dashboard: static page, no data
    app.add_api_route("/", to_dashboard, methods=["GET"], include_in_schema=False)
    install_openapi(app)
    install_docs(app)
    return app


app = create_app()
