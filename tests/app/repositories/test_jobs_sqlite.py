"""Issue 18 on the embedded database (SQLite, migrated by Alembic): the job list filters and
the in-use query take SQLite's JSON functions where PostgreSQL takes its operators and
indexes; both must give the same answers. (PostgreSQL: tests/app/routes/test_job_filters.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from alembic import command
from app.db.models import Tenant
from app.db.session import make_engine
from app.repositories import jobs as jobs_repo
from app.repositories.jobs import JobFilter
from app.services.job_filters import job_filter
from tests.conftest import alembic_config

T0 = datetime.fromisoformat("2026-03-01T12:00:00+00:00")


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_filters_and_the_in_use_query_on_sqlite(sqlite: Session) -> None:
    tenant = Tenant(id=uuid.uuid4(), name="t")
    sqlite.add(tenant)
    sqlite.flush()
    model = str(uuid.uuid4())

    def job(minute: int, status: str, labels: dict[str, str], **spec: object) -> str:
        made = jobs_repo.create_queued(
            sqlite, tenant.id, {"model": "minilm-l6", "dataset": {"name": "sst2"}, **spec},
            None, name=f"job {minute}", labels=labels,
        )  # fmt: skip
        made.status = status
        made.created_at = T0 + timedelta(minutes=minute)
        sqlite.commit()
        return str(made.id)

    a = job(0, "queued", {"team": "search", "env": "prod"}, model=model)
    b = job(1, "succeeded", {"team": "search"}, recipe="obert-80@1")
    c = job(2, "failed", {"team": "ads"}, dataset={"name": "tweets"}, recipe="obert-800@1")

    def listed(**where: object) -> list[str]:
        f = JobFilter(**where)  # type: ignore[arg-type]
        jobs, _ = jobs_repo.list_page(sqlite, tenant_id=tenant.id, cursor=None, limit=10, where=f)
        return [str(j.id) for j in jobs]

    assert listed() == [c, b, a]
    assert listed(labels={"team": "search"}) == [b, a]
    assert listed(labels={"team": "search", "env": "prod"}) == [a]
    assert listed(model=model) == [a]
    assert listed(dataset="tweets") == [c]
    assert listed(recipe="obert-80") == [b]
    assert listed(statuses=("failed", "succeeded")) == [c, b]
    minute = timedelta(minutes=1)
    assert listed(created_after=T0 + minute, created_before=T0 + 2 * minute) == [b]
    assert [str(j.id) for j in jobs_repo.active_using(sqlite, model=model)] == [a]
    assert jobs_repo.active_using(sqlite, dataset="tweets") == []  # c is finished
    sqlite.expire_all()
    row = jobs_repo.get(sqlite, uuid.UUID(a), tenant_id=None)
    assert row is not None
    assert (row.name, row.labels) == ("job 0", {"team": "search", "env": "prod"})


def test_created_bounds_in_another_offset_on_sqlite(sqlite: Session) -> None:
    """SQLite stores times as naive UTC text: a bound given at +01:00 is compared as the UTC
    instant it names, not as its wall clock."""
    tenant = Tenant(id=uuid.uuid4(), name="t")
    sqlite.add(tenant)
    sqlite.flush()
    made = []
    for minute in range(4):
        job = jobs_repo.create_queued(sqlite, tenant.id, {"model": "minilm-l6"}, None)
        job.created_at = T0 + timedelta(minutes=minute)
        made.append(str(job.id))
    sqlite.commit()
    where = job_filter(created_after="2026-03-01T13:01:00+01:00",
                       created_before="2026-03-01T07:33:00-04:30")  # fmt: skip
    assert where.created_after == T0 + timedelta(minutes=1)
    assert where.created_after is not None and where.created_after.utcoffset() == timedelta(0)
    jobs, _ = jobs_repo.list_page(sqlite, tenant_id=tenant.id, cursor=None, limit=10, where=where)
    assert [str(j.id) for j in jobs] == [made[2], made[1]]
    # A JobFilter made elsewhere with an offset compares as its instant too.
    f = JobFilter(created_after=datetime.fromisoformat("2026-03-01T13:02:00+01:00"))
    jobs, _ = jobs_repo.list_page(sqlite, tenant_id=tenant.id, cursor=None, limit=10, where=f)
    assert [str(j.id) for j in jobs] == [made[3], made[2]]
