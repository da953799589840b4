"""The listener behind app.services.job_cache: one PostgreSQL connection per API process,
``LISTEN scalpel_job_changed``, each notification evicts that job. Runs on a daemon thread
from the app's lifespan; while it is disconnected the cache is off (and empty), and it
reconnects every ``retry_s``."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import psycopg
from sqlalchemy.engine import make_url

from app.services.job_cache import JobCache

log = logging.getLogger("scalpel.job_notify")
CHANNEL = "scalpel_job_changed"  # alembic 0006 notifies it
APPLICATION_NAME = "scalpel-job-notify"  # how the connection shows in pg_stat_activity
KEEPALIVE_S = 10.0  # a query now and then, so a dead server is noticed when nothing changes
TRIGGER_EXISTS = "SELECT 1 FROM pg_trigger WHERE tgname = 'job_changed_notify'"


def libpq_url(sqlalchemy_url: str) -> str:
    """postgresql+psycopg://... -> postgresql://... (what psycopg.connect takes)."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class JobChangeListener:
    def __init__(self, dsn: str, cache: JobCache, *, retry_s: float = 1.0) -> None:
        self.dsn = dsn
        self.cache = cache
        self.retry_s = retry_s
        self.connected = threading.Event()
        self.connections = 0  # how many times it has connected (and started listening)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-notify", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as exc:  # the server went away, or never answered
                log.warning("job change listener disconnected: %s", exc)
            finally:
                self.connected.clear()
                self.cache.set_live(False)
            self._stop.wait(self.retry_s)

    def _listen(self) -> None:
        with psycopg.connect(
            self.dsn, autocommit=True, connect_timeout=5, application_name=APPLICATION_NAME
        ) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            if conn.execute(TRIGGER_EXISTS).fetchone() is None:
                # Nothing would ever evict an entry: stay off (and say so once a minute).
                log.warning("no job_changed_notify trigger (alembic upgrade head): no job cache")
                self._stop.wait(60.0)
                return
            self.cache.set_live(True)
            self.connections += 1
            self.connected.set()
            last_seen = time.monotonic()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=0.5):
                    self._evict(note.payload)
                if time.monotonic() - last_seen > KEEPALIVE_S:
                    conn.execute("SELECT 1")
                    last_seen = time.monotonic()

    def _evict(self, payload: str) -> None:
        try:
            job_id = uuid.UUID(payload)
        except ValueError:
            log.warning("ignoring a %s notification with payload %r", CHANNEL, payload)
            return
        self.cache.evict(job_id)
