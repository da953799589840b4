"""The filters of GET /v1/jobs, read from the query into app.repositories.jobs.JobFilter.

Every filter given must match: status (one or several), model, dataset, recipe (`name`, any
version, or `name@version`), label (`key=value`, repeatable), created_after (inclusive) and
created_before (exclusive), both RFC 3339 date-times with an offset (compared as the UTC
instant they name: SQLite stores times as naive UTC). An uploaded model or data set may be
given in any spelling of its id; it is matched as the canonical one that submissions store.
A control character (NUL among them, which PostgreSQL text cannot hold) in a filter is a 422
naming it: no spec holds one."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from app.db.models import JOB_STATUSES
from app.errors import Unprocessable
from app.repositories.jobs import JobFilter
from app.schemas.job_submission import MAX_LABELS, check_label_key, check_label_value

RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?P<frac>\.\d+)?(?P<tz>[Zz]|[+-]\d{2}:\d{2})"
)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_text(raw: str | None, field: str) -> str | None:
    """raw, unless it holds a control character (a 422 naming the parameter)."""
    if raw is not None and (m := CONTROL.search(raw)) is not None:
        raise Unprocessable(
            f"{field} has a control character ({m[0]!r}); no job's spec holds one",
            code="validation_error", field=field,
        )  # fmt: skip
    return raw


def canonical_id(raw: str) -> str:
    """An uploaded model's or data set's id as submissions store it; anything else as is."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return raw


def parse_timestamp(raw: str | None, field: str) -> datetime | None:
    if raw is None:
        return None
    m = RFC3339.fullmatch(raw)
    if m is not None:
        # datetime takes at most microseconds; RFC 3339 allows any number of digits. Times
        # are stored in microseconds, so an instant between two of them bounds the list as
        # the next one does (t >= x and t < x alike).
        frac = m["frac"] or ""
        tz = "+00:00" if m["tz"] in "Zz" else m["tz"]
        text = f"{raw[:10]}T{raw[11:19]}{frac[:7]}{tz}"
        try:
            when = datetime.fromisoformat(text).astimezone(UTC)
        except ValueError:
            pass
        else:
            return when + timedelta(microseconds=1) if frac[7:].strip("0") else when
    raise Unprocessable(
        f"{field} is not an RFC 3339 date-time with an offset (2026-01-31T12:00:00Z, "
        f"2026-01-31T13:00:00+01:00): {raw[:64]!r}", code="validation_error", field=field,
    )  # fmt: skip


def parse_labels(raw: Sequence[str]) -> dict[str, str]:
    """`key=value` each (the value may hold '='; an empty one matches an empty label)."""
    if len(raw) > MAX_LABELS:
        raise Unprocessable(
            f"{len(raw)} label filters; at most {MAX_LABELS}", code="validation_error",
            field="label",
        )  # fmt: skip
    out: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        fault = (
            f"label filter {item[:80]!r} is not key=value"
            if not sep
            else check_label_key(key) or check_label_value(key, value)
        )
        if fault is None and out.get(key, value) != value:
            fault = f"label {key!r} is given twice with different values: no job has both"
        if fault is not None:
            raise Unprocessable(fault, code="validation_error", field="label")
        out[key] = value
    return out


def parse_statuses(raw: Sequence[str]) -> tuple[str, ...]:
    for status in raw:
        if status not in JOB_STATUSES:
            raise Unprocessable(
                f"status {status[:32]!r} is not one of {', '.join(JOB_STATUSES)}",
                code="validation_error", field="status",
            )  # fmt: skip
    return tuple(dict.fromkeys(raw))


def job_filter(
    *, status: Sequence[str] | None = None, model: str | None = None, dataset: str | None = None,
    recipe: str | None = None, label: Sequence[str] | None = None,
    created_after: str | None = None, created_before: str | None = None,
) -> JobFilter:  # fmt: skip
    model, dataset = check_text(model, "model"), check_text(dataset, "dataset")
    return JobFilter(
        statuses=parse_statuses(status or ()),
        model=canonical_id(model) if model is not None else None,
        dataset=canonical_id(dataset) if dataset is not None else None,
        recipe=check_text(recipe, "recipe"),
        labels=parse_labels(label or ()),
        created_after=parse_timestamp(created_after, "created_after"),
        created_before=parse_timestamp(created_before, "created_before"),
    )
