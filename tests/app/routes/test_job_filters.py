"""Issue 18: GET /v1/jobs filters (status, model, dataset, recipe, label, created_after and
created_before; every one given must match), keyset pages that stay exact under them, and
a 422 naming any query parameter a list endpoint does not take."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db.models import Job
from app.services.api_keys import IssuedKey
from tests.app.conftest import MakeClient
from tests.app.routes.test_jobs import problem
from tests.factories.archives import model_files, zip_bytes
from tests.factories.jobs import make_listed_job
from tests.factories.tenants import make_api_key

T0 = datetime.fromisoformat("2026-03-01T12:00:00+00:00")
CSV = "text,label\n" + "".join(f"row {i},{'pos' if i % 2 else 'neg'}\n" for i in range(10))


def ids(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    return [j["id"] for j in r.json()["items"]]


def job(db: Session, key: IssuedKey, minutes: int, **kw: Any) -> str:
    spec = {"model": kw.pop("model", "minilm-l6"),
            "dataset": {"name": kw.pop("dataset", "sst2")}}  # fmt: skip
    if "recipe" in kw:
        spec["recipe"] = kw.pop("recipe")
    made = make_listed_job(db, key.tenant_id, spec=spec,
                           created_at=T0 + timedelta(minutes=minutes), **kw)  # fmt: skip
    return str(made.id)


@pytest.fixture
def jobs(client: TestClient, db_session: Session, api_key: IssuedKey) -> dict[str, str]:
    """Six jobs of tenant-a, one a minute, and one of another tenant that matches them all."""
    other = make_api_key(db_session, "tenant-other")
    job(db_session, other, 9, status="running", labels={"team": "search"})
    return {
        "q": job(db_session, api_key, 0, labels={"team": "search", "env": "prod"}),
        "r": job(db_session, api_key, 1, status="running", model="tiny",
                 labels={"team": "search"}),
        "s": job(db_session, api_key, 2, status="succeeded", dataset="tweets",
                 recipe="obert-80@1", labels={"team": "ads", "env": "prod"}),
        "f": job(db_session, api_key, 3, status="failed", recipe="obert-90@2",
                 labels={"q": "a=b"}),
        "c": job(db_session, api_key, 4, status="canceled", recipe="obert-80@2",
                 labels={"team": ""}),
        "x": job(db_session, api_key, 5, status="succeeded", recipe="obert-800@1"),
    }  # fmt: skip


def listed(client: TestClient, params: Any) -> list[str]:
    return ids(client.get("/v1/jobs", params=params))


# fmt: off
CASES: list[tuple[Any, str]] = [
    ({}, "xcfsrq"),
    ({"status": "running"}, "r"),
    ([("status", "succeeded"), ("status", "failed")], "xfs"),
    ([("status", "queued"), ("status", "queued")], "q"),
    ({"model": "tiny"}, "r"),
    ({"model": "minilm-l6"}, "xcfsq"),
    ({"dataset": "tweets"}, "s"),
    ({"recipe": "obert-80"}, "cs"),  # any version, not obert-800
    ({"recipe": "obert-80@2"}, "c"),
    ({"recipe": "obert-8"}, ""),
    ({"label": "team=search"}, "rq"),
    ([("label", "team=search"), ("label", "env=prod")], "q"),
    ([("label", "env=prod")], "sq"),
    ({"label": "q=a=b"}, "f"),  # the value holds '='
    ({"label": "team="}, "c"),  # an empty value
    ({"label": "nobody=here"}, ""),
    ({"created_after": "2026-03-01T12:02:00Z"}, "xcfs"),  # inclusive
    ({"created_before": "2026-03-01T12:02:00Z"}, "rq"),  # exclusive
    ({"created_after": "2026-03-01T13:01:00+01:00", "created_before": "2026-03-01T12:04:00Z"},
     "fsr"),
    # Past microseconds: r (12:01:00) is before the first bound, c (12:04:00) before the second.
    ({"created_after": "2026-03-01T12:01:00.0000001Z",
      "created_before": "2026-03-01t12:04:00.000000001z"}, "cfs"),
    ([("status", "succeeded"), ("label", "env=prod"), ("recipe", "obert-80")], "s"),
]
# fmt: on


@pytest.mark.parametrize(("params", "expected"), CASES)
def test_filters(client: TestClient, jobs: dict[str, str], params: Any, expected: str) -> None:
    assert listed(client, params) == [jobs[k] for k in expected]


def test_pages_stay_exact_under_filters(
    client: TestClient, db_session: Session, api_key: IssuedKey
) -> None:
    """Matching jobs interleaved with others, some created at the same instant (the id
    breaks the tie): walking pages of 2 gives each match once, newest first."""
    want: list[str] = []
    for i in range(9):
        minute = i // 2  # pairs share a created_at
        want.append(job(db_session, api_key, minute, status="succeeded", labels={"k": "v"}))
        job(db_session, api_key, minute, status="succeeded", labels={"k": "w"})
        job(db_session, api_key, minute, status="failed", labels={"k": "v"})
    rows = [db_session.get(Job, uuid.UUID(i)) for i in want]
    expected = [str(j.id) for j in sorted(rows, key=lambda j: (j.created_at, j.id),  # type: ignore[union-attr]
                                          reverse=True)]  # fmt: skip
    params: dict[str, Any] = {"status": "succeeded", "label": "k=v", "limit": 2}
    seen: list[str] = []
    for _ in range(10):
        r = client.get("/v1/jobs", params=params)
        seen += ids(r)
        token = r.json()["next_page_token"]
        if token is None:
            break
        params["page_token"] = token
    assert seen == expected


def test_another_tenants_jobs_are_never_listed(
    make_client: MakeClient, db_session: Session, jobs: dict[str, str]
) -> None:
    stranger = make_client(key=make_api_key(db_session, "tenant-stranger"))
    assert listed(stranger, {"label": "team=search"}) == []


def test_uploaded_ids_match_in_any_spelling(client: TestClient) -> None:
    """A submission stores its uploaded model and data set by canonical id, and a filter
    given another spelling of the id (upper case, no hyphens) finds it."""
    model = client.post("/v1/models", files={"file": ("m.zip", zip_bytes(model_files()))})
    dataset = client.post("/v1/datasets", files={"file": ("d.csv", CSV.encode())})
    model_id, dataset_id = model.json()["id"], dataset.json()["id"]
    unhyphenated = dataset_id.replace("-", "")
    r = client.post("/v1/jobs", json={"model": model_id.upper(), "dataset": {"name": unhyphenated}})
    assert r.status_code == 202, r.text
    assert r.json()["spec"]["model"] == model_id
    assert r.json()["spec"]["dataset"]["name"] == dataset_id
    assert listed(client, {"model": model_id.upper()}) == [r.json()["id"]]
    assert listed(client, {"dataset": unhyphenated}) == [r.json()["id"]]


BAD = [
    ({"label": "team"}, "label"),
    ({"label": "Team=x"}, "label"),
    ({"label": "team=a\x01"}, "label"),
    ([("label", "team=a"), ("label", "team=b")], "label"),
    ([("label", f"k{i}=v") for i in range(33)], "label"),
    ({"created_after": "2026-03-01"}, "created_after"),
    ({"created_after": "2026-03-01T12:00:00"}, "created_after"),  # no offset
    ({"created_before": "1767225600"}, "created_before"),
    ({"created_before": "2026-02-30T12:00:00Z"}, "created_before"),
    ({"status": "sleeping"}, "status"),
    ([("status", "queued"), ("status", "done")], "status"),
    ({"model": ""}, "model"),
    ({"recipe": "r" * 65}, "recipe"),
    # PostgreSQL text cannot hold NUL: refused before any query, naming the filter.
    ({"model": "\x00"}, "model"),
    ({"model": "minilm-l6\x00"}, "model"),
    ({"dataset": "sst2\x00"}, "dataset"),
    ({"dataset": "\x1b[2J"}, "dataset"),
    ({"recipe": "obert-80\x00"}, "recipe"),
    ({"recipe": "obert\x7f"}, "recipe"),
    ({"label": "team=\x00"}, "label"),
    ({"label": "te\x00am=x"}, "label"),
    ({"created_after": "2026-03-01T12:00:00Z\x00"}, "created_after"),
    ({"status": "queued\x00"}, "status"),
]


@pytest.mark.parametrize(("params", "field"), BAD)
def test_bad_filters_are_422_naming_the_parameter(
    client: TestClient, params: Any, field: str
) -> None:
    body = problem(client.get("/v1/jobs", params=params), 422, "validation_error")
    assert body["field"] == field, body


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/models", "/v1/datasets"])
@pytest.mark.parametrize("token", ["\x00", "abc\x00def", "\x00" * 8])
def test_a_page_token_with_a_nul_is_422(client: TestClient, path: str, token: str) -> None:
    body = problem(client.get(path, params={"page_token": token}), 422, "invalid_page_token")
    assert body["field"] == "page_token"


# Each list endpoint and a query parameter it takes (None: it takes none).
LISTS = [("/v1/jobs", "limit"), ("/v1/models", "limit"), ("/v1/datasets", "limit"),
         ("/v1/jobs/{id}/events", "after"), ("/v1/jobs/{id}/artifacts", None),
         ("/v1/jobs/{id}/webhook-deliveries", None), ("/v1/recipes", None),
         ("/v1/webhook-secrets", None)]  # fmt: skip


@pytest.mark.parametrize(("path", "known"), LISTS)
def test_unknown_query_parameters_are_refused_on_every_list(
    client: TestClient, db_session: Session, api_key: IssuedKey, path: str, known: str | None
) -> None:
    url = path.format(id=job(db_session, api_key, 0))
    params = {known: "1"} if known else {}
    assert client.get(url, params=params).status_code == 200
    body = problem(client.get(url, params={**params, "modle": "x"}), 422, "unknown_parameter")
    assert body["field"] == "modle"
    assert (known or "none") in body["detail"]


def test_a_misspelt_filter_no_longer_lists_every_job(
    client: TestClient, jobs: dict[str, str]
) -> None:
    problem(client.get("/v1/jobs", params={"modle": "tiny"}), 422, "unknown_parameter")
    assert listed(client, {"model": "tiny"}) == [jobs["r"]]
