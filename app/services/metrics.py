"""Prometheus metrics, read from the registry (and the broker) on every scrape, so every API
process reports the same numbers and nothing is lost when a process restarts.

They count every tenant's jobs, so who may read them (`authorize`): with `metrics_token` set,
`Authorization: Bearer <metrics_token>` or an admin API key; without one, an admin API key,
unless `metrics_public` opens them to anyone (and the API warns at startup that it does).
An API key presented to /metrics is checked by admission (app.concurrency, through
`takes_api_key`), like any key, before the request takes a slot; `authorize` reads the caller
admission found."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import JOB_STATUSES
from app.errors import Forbidden, Unauthenticated
from app.repositories import ops_metrics as repo
from app.settings import Settings
from app.tenancy import Caller

log = logging.getLogger(__name__)
SessionFactory = Callable[[], Session]

JOB_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 2 * 3600.0, 4 * 3600.0, 12 * 3600.0)
STAGE_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0)


def histogram(
    name: str, doc: str, label: str, samples: Iterable[tuple[str, float]], buckets: Sequence[float]
) -> HistogramMetricFamily:
    by_label: dict[str, list[float]] = {}
    for key, value in samples:
        by_label.setdefault(key, []).append(value)
    family = HistogramMetricFamily(name, doc, labels=[label])
    for key, values in sorted(by_label.items()):
        counts = [(str(b), float(sum(1 for v in values if v <= b))) for b in buckets]
        counts.append(("+Inf", float(len(values))))
        family.add_metric([key], counts, sum(values))
    return family


def queue_depth(settings: Settings) -> int | None:
    """LLEN of the compress queue when Redis is the broker; None otherwise or unreachable."""
    url = settings.effective_broker_url
    if not url.startswith(("redis://", "rediss://")):
        return None
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            return int(client.llen(settings.compress_queue))
        finally:
            client.close()
    except Exception:
        log.warning("queue depth not read from the broker", exc_info=True)
        return None


class RegistryCollector(Collector):
    def __init__(self, factory: SessionFactory, settings: Settings) -> None:
        self.factory = factory
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        stale_before = utcnow() - timedelta(seconds=self.settings.heartbeat_stale_s)
        with self.factory() as session:
            counts = repo.jobs_by_status(session)
            durations = repo.finished_durations(session)
            stages = repo.stage_seconds(session)
            beats = repo.running_heartbeats(session, stale_before=stale_before)
            webhook_failures = repo.failed_webhook_attempts(session)
        jobs = GaugeMetricFamily("scalpel_jobs", "Jobs by state.", labels=["state"])
        for status in JOB_STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        depth = queue_depth(self.settings)
        if depth is not None:
            yield GaugeMetricFamily(
                "scalpel_queue_depth", "Messages waiting in the compress queue.", value=depth
            )
        yield histogram(
            "scalpel_job_duration_seconds", "Finished jobs, start to finish.", "status",
            durations, JOB_BUCKETS,
        )  # fmt: skip
        yield histogram(
            "scalpel_stage_duration_seconds", "Stages of finished jobs.", "stage",
            ((str(k), float(v)) for d in stages for k, v in d.items()
             if isinstance(v, int | float)),
            STAGE_BUCKETS,
        )  # fmt: skip
        if webhook_failures is not None:
            yield GaugeMetricFamily(
                "scalpel_webhook_failed_attempts", "Failed webhook delivery attempts.",
                value=webhook_failures,
            )  # fmt: skip
        age = (utcnow() - beats.newest).total_seconds() if beats.newest else None
        if age is not None:
            yield GaugeMetricFamily(
                "scalpel_worker_heartbeat_age_seconds",
                "Age of the newest heartbeat among running jobs.", value=max(0.0, age),
            )  # fmt: skip
        yield GaugeMetricFamily(
            "scalpel_running_jobs_stale_heartbeat",
            "Running jobs with no heartbeat for heartbeat_stale_s.", value=beats.stale,
        )  # fmt: skip


def render(factory: SessionFactory, settings: Settings) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RegistryCollector(factory, settings))
    return generate_latest(registry)


def exposure(settings: Settings) -> str:
    """Who may read /metrics: "token", "admin" or "public"."""
    if settings.metrics_token:
        return "token"
    return "public" if settings.metrics_public else "admin"


REFUSED = {
    "token": "the metrics token (Authorization: Bearer <METRICS_TOKEN>) or an admin API key "
    "is required",
    "admin": "an admin API key is required: /metrics counts every tenant's jobs (set "
    "METRICS_TOKEN for a scraper, or METRICS_PUBLIC=true to open it to anyone)",
}


def is_metrics_token(settings: Settings, token: str | None) -> bool:
    expected = settings.metrics_token
    return bool(expected and token and hmac.compare_digest(token.encode(), expected.encode()))


def takes_api_key(settings: Settings, token: str) -> bool:
    """Admission asks, for a token presented to /metrics: is it an API key to check? Not
    when /metrics is public, nor for the metrics token (which is no API key)."""
    return exposure(settings) != "public" and not is_metrics_token(settings, token)


def authorize(settings: Settings, token: str | None, caller: Caller | None) -> None:
    """Refuse a caller who may not read every tenant's counts: 401, or 403 for a tenant's
    own key. `token` is the presented key (app.deps.presented_token), `caller` who admission
    authenticated it as (None: no API key was checked)."""
    mode = exposure(settings)
    if mode == "public" or is_metrics_token(settings, token):
        return
    if caller is None:
        raise Unauthenticated(REFUSED[mode])
    if not caller.is_admin:
        raise Forbidden("/metrics counts every tenant's jobs: it needs an admin API key")


def log_exposure(settings: Settings) -> None:
    """At startup: loud when anyone may read the cross-tenant counts."""
    mode = exposure(settings)
    if mode == "public":
        log.warning(
            "/metrics is public (METRICS_PUBLIC=true, no METRICS_TOKEN): anyone who can reach "
            "the API reads job counts and timings across every tenant"
        )
    elif mode == "admin":
        log.info("/metrics needs an admin API key (set METRICS_TOKEN for a scraper)")
