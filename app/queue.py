"""Celery configuration shared by the API (a client that enqueues by task name) and the
worker, and a read of what a Redis broker holds (to tell when it lost its messages)."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from celery import Celery

from app.settings import Settings, get_settings

COMPRESS_TASK = "scalpel.compress"


def celery_config(settings: Settings) -> dict[str, Any]:
    broker = settings.effective_broker_url
    transport_options: dict[str, Any] = {}
    if settings.uses_filesystem_broker:
        folder = settings.broker_dir / "queue"
        processed = settings.broker_dir / "processed"
        control = settings.broker_dir / "control"
        for d in (folder, processed, control):
            d.mkdir(parents=True, exist_ok=True)
        transport_options = {
            "control_folder": str(control),
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "processed_folder": str(processed),
            "store_processed": False,
        }
    elif broker.startswith(("redis://", "rediss://")):
        # Longer than the longest job, or a running job would be redelivered.
        transport_options = {"visibility_timeout": settings.job_time_limit_s + 3600}
    return {
        "broker_url": broker,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,  # the job row is the source of truth
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": settings.compress_queue,
        "task_routes": {COMPRESS_TASK: {"queue": settings.compress_queue}},
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_time_limit": settings.job_time_limit_s,
        "worker_hijack_root_logger": False,
    }


def make_celery(settings: Settings, name: str = "scalpel") -> Celery:
    app = Celery(name)
    app.conf.update(celery_config(settings))
    return app


@lru_cache
def get_celery() -> Celery:
    return make_celery(get_settings(), "scalpel-api")


def enqueue_compress(job_id: uuid.UUID) -> None:
    """Send only the job id; the worker re-reads the job row."""
    settings = get_settings()
    get_celery().send_task(COMPRESS_TASK, args=[str(job_id)], queue=settings.compress_queue)


def broker_reachable(timeout_s: float = 2.0) -> bool:
    try:
        with get_celery().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
        return True
    except Exception:
        return False


# kombu's Redis transport: a queue is a list (one more per priority step, `<queue>\x06\x16<p>`)
# and a message a worker took but has not acked yet sits in the `unacked` hash.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)
UNACKED_KEY = "unacked"
SNAPSHOT_MAX_MESSAGES = 100_000


@dataclass(frozen=True)
class BrokerSnapshot:
    """What a Redis broker holds for the compress task: the server's run id (new after every
    restart) and the job ids of every message waiting in the queue or taken and unacked."""

    run_id: str
    job_ids: frozenset[str]
    messages: int


@dataclass(frozen=True)
class BrokerCounts:
    """A cheap read of a Redis broker (constant-time commands, no message read): its run id
    and how many messages it holds in the compress queue (every priority) and unacked."""

    run_id: str
    messages: int


class SnapshotIncomplete(Exception):
    """The broker holds messages that could not be read, or too many to read in one pass."""


def _job_id_of(message: dict[str, Any]) -> str | None:
    """The job id a compress message carries (None for another task's message)."""
    headers = message.get("headers") or {}
    if headers.get("task") != COMPRESS_TASK:
        return None
    body = message["body"]
    if (message.get("properties") or {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    args = json.loads(body)[0]
    return str(uuid.UUID(str(args[0])))


def _redis_client(settings: Settings) -> Any:
    """A client of the broker, or None unless the broker is Redis."""
    url = settings.effective_broker_url
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def _queue_keys(settings: Settings) -> list[str]:
    queue = settings.compress_queue
    return [queue, *(f"{queue}{PRIORITY_SEPARATOR}{p}" for p in PRIORITY_STEPS)]


def broker_counts(settings: Settings) -> BrokerCounts | None:
    """None unless the broker is Redis; one round trip (INFO, LLEN per priority, HLEN).
    Raises redis errors when it is unreachable."""
    client = _redis_client(settings)
    if client is None:
        return None
    try:
        pipe = client.pipeline(transaction=False)
        pipe.info("server")
        for key in _queue_keys(settings):
            pipe.llen(key)
        pipe.hlen(UNACKED_KEY)
        info, *lengths = pipe.execute()
    finally:
        client.close()
    return BrokerCounts(run_id=str(info["run_id"]), messages=sum(int(n) for n in lengths))


def broker_snapshot(settings: Settings) -> BrokerSnapshot | None:
    """None unless the broker is Redis. Raises redis errors when it is unreachable, and
    SnapshotIncomplete when its content cannot all be read. Reads every message (up to
    4 x SNAPSHOT_MAX_MESSAGES): the reaper calls it only when broker_counts does not add up."""
    client = _redis_client(settings)
    if client is None:
        return None
    try:
        run_id = str(client.info("server")["run_id"])
        keys = _queue_keys(settings)
        raws: list[bytes | str] = []
        for key in keys:
            if client.llen(key) > SNAPSHOT_MAX_MESSAGES:
                raise SnapshotIncomplete(f"more than {SNAPSHOT_MAX_MESSAGES} messages in {key!r}")
            raws.extend(client.lrange(key, 0, -1))
        if client.hlen(UNACKED_KEY) > SNAPSHOT_MAX_MESSAGES:
            raise SnapshotIncomplete(f"more than {SNAPSHOT_MAX_MESSAGES} unacked messages")
        unacked = client.hvals(UNACKED_KEY)
    finally:
        client.close()
    ids: set[str] = set()
    try:
        for raw in raws:
            if (job_id := _job_id_of(json.loads(raw))) is not None:
                ids.add(job_id)
        for entry in unacked:
            if (job_id := _job_id_of(json.loads(entry)[0])) is not None:
                ids.add(job_id)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SnapshotIncomplete(f"a broker message could not be read: {exc}") from exc
    return BrokerSnapshot(run_id=run_id, job_ids=frozenset(ids), messages=len(raws) + len(unacked))
