"""Logging for the API and the worker: one JSON object a line (log_format "json") or plain
text, each line with the job_id and request_id of the context it was written in."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from app.settings import Settings, get_settings

job_id_var: ContextVar[str | None] = ContextVar("scalpel_job_id", default=None)
request_id_var: ContextVar[str | None] = ContextVar("scalpel_request_id", default=None)
CONTEXT = {"job_id": job_id_var, "request_id": request_id_var}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [job=%(job_id)s] %(message)s"
# Loggers that bring their own handlers; theirs go, so every line has one format.
FOREIGN = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task", "celery.worker")


@contextmanager
def log_context(**values: str | None) -> Iterator[None]:
    """`with log_context(job_id=...):` every line logged inside carries these values."""
    tokens = [(CONTEXT[k], CONTEXT[k].set(v)) for k, v in values.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in CONTEXT.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in CONTEXT.items():
            value = getattr(record, name, None) or var.get()
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def make_handler(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    json_lines = settings.log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    return handler


def configure_logging(settings: Settings | None = None, stream: IO[str] | None = None) -> None:
    """Send every logger through one root handler in the configured format."""
    settings = settings or get_settings()
    root = logging.getLogger()
    root.handlers = [make_handler(settings, stream)]
    root.setLevel(settings.log_level.upper())
    for name in FOREIGN:
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
