"""Schemathesis against the ASGI app on the test database, authenticated as a tenant: every
operation gets a few generated cases, valid and invalid, each checked for no 5xx, a
documented status code and a response that conforms to the schema. Bounded (examples per
operation, derandomized, no deadline) so the file stays well under 90 s on two loaded cores.

(schemathesis.pytest.from_fixture does not run on pytest 9, so the operations are
parametrized here and each builds its strategy from the fixture's app.)"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session

from app.main import create_app
from app.services.api_keys import IssuedKey
from tests.app.conftest import MakeClient
from tests.factories.archives import model_files, zip_bytes
from tests.factories.jobs import make_artifact, make_job, make_listed_job
from tests.factories.tenants import auth
from tests.factories.webhooks import make_delivery

pytestmark = pytest.mark.timeout(60)  # per test; the file takes about 20 s in all
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
PHASES = (Phase.explicit, Phase.generate)  # no shrinking: a failure shows the first case
MAX_EXAMPLES = {GenerationMode.POSITIVE: 20, GenerationMode.NEGATIVE: 10}
_PATHS = create_app().openapi()["paths"]
OPERATIONS = [(method.upper(), path) for path, item in _PATHS.items() for method in item]
# Invalid input needs something to be invalid: parameters or a body.
HAS_INPUT = {
    (method.upper(), path)
    for path, item in _PATHS.items()
    for method, op in item.items()
    if op.get("parameters") or op.get("requestBody")
}


@pytest.fixture
def api_schema(make_client: MakeClient) -> Any:
    client: TestClient = make_client()
    return schemathesis.openapi.from_asgi("/openapi.json", client.app)


@pytest.mark.parametrize("mode", list(MAX_EXAMPLES), ids=str)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_the_openapi_document(
    api_schema: Any, api_key: IssuedKey, method: str, path: str, mode: GenerationMode
) -> None:
    if mode == GenerationMode.NEGATIVE and (method, path) not in HAS_INPUT:
        pytest.skip("no parameters or body to make invalid")
    operation = api_schema[path][method]
    headers = auth(api_key)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES[mode], deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck), phases=PHASES,
    )  # fmt: skip
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def _pin_builtins(case: Any) -> Any:
    """A generated job spec on the built-in model and data set, so that it gets past the
    lookups into the spec checks, the registry and the response."""
    if isinstance(case.body, dict):
        case.body["model"] = "minilm-l6"
        if isinstance(case.body.get("dataset"), dict):
            case.body["dataset"]["name"] = "tweets"
            case.body["dataset"].pop("text_columns", None)
            case.body["dataset"].pop("label_column", None)
    return case


@pytest.fixture
def existing_ids(
    make_client: MakeClient, db_session: Session, api_key: IssuedKey
) -> dict[str, str]:
    """One of each object of the api_key's tenant, by path parameter name."""
    client = make_client()
    model = client.post("/v1/models", files={"file": ("m.zip", zip_bytes(model_files()))})
    rows = "".join(f"row {i},{i % 2}\n" for i in range(10))
    dataset = client.post("/v1/datasets", files={"file": ("d.csv", f"text,label\n{rows}")})
    assert model.status_code == 201 and dataset.status_code == 201, (model.text, dataset.text)
    job = make_job(db_session, api_key.tenant.id)
    artifact = make_artifact(db_session, job, b"model bytes")
    finished = make_listed_job(db_session, api_key.tenant.id, status="succeeded")
    return {
        "job_id": str(job.id), "artifact_id": str(artifact.id), "finished_job": str(finished.id),
        "model_id": model.json()["id"], "dataset_id": dataset.json()["id"],
        "delivery_id": str(make_delivery(db_session, job).id),
    }  # fmt: skip


WITH_IDS = [(m, p) for m, p in OPERATIONS if "{" in p]


@pytest.mark.parametrize("mode", list(MAX_EXAMPLES), ids=str)
@pytest.mark.parametrize(("method", "path"), WITH_IDS, ids=[f"{m} {p}" for m, p in WITH_IDS])
def test_operation_on_existing_objects_conforms(
    api_schema: Any, api_key: IssuedKey, existing_ids: dict[str, str], method: str, path: str,
    mode: GenerationMode,
) -> None:  # fmt: skip
    operation = api_schema[path][method]
    names = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
    ids = {n: existing_ids[n] for n in names if n in existing_ids}  # the rest: generated
    if (method, path) == ("DELETE", "/v1/jobs/{job_id}"):  # a queued job is a 409
        ids["job_id"] = existing_ids["finished_job"]
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=ids)
    headers = auth(api_key)

    @given(case=strategy)
    @settings(
        max_examples=8, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck), phases=PHASES,
    )  # fmt: skip
    def run(case: Any) -> None:
        statuses.append(case.call_and_validate(headers=headers, checks=CHECKS).status_code)

    statuses: list[int] = []
    run()
    if mode == GenerationMode.POSITIVE and len(ids) == len(names):
        assert any(200 <= s < 300 for s in statuses), statuses


def test_generated_job_specs_on_builtins_conform(api_schema: Any, api_key: IssuedKey) -> None:
    strategy = api_schema["/v1/jobs"]["POST"].as_strategy().map(_pin_builtins)
    headers = auth(api_key)

    @given(case=strategy)
    @settings(
        max_examples=30, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck), phases=PHASES,
    )  # fmt: skip
    def run(case: Any) -> None:
        statuses.append(case.call_and_validate(headers=headers, checks=CHECKS).status_code)

    statuses: list[int] = []
    run()
    assert 202 in statuses, statuses
