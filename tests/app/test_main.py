from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect

import app.__main__ as app_main
from app.main import app, create_app

ROOT = Path(__file__).resolve().parents[2]


def test_module_level_app_for_uvicorn() -> None:
    assert app.title == "Scalpel"
    assert set(app_main.COMMANDS) == {"migrate", "serve"}


def test_openapi_declares_models_and_problems(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    comps = schema["components"]["schemas"]
    assert {"JobSpec", "JobOut", "Problem", "ModelOut", "DatasetOut", "ArtifactList"} <= set(comps)
    assert "HTTPValidationError" not in comps
    post = schema["paths"]["/v1/jobs"]["post"]
    assert "202" in post["responses"]
    for status in ("404", "422"):
        content = post["responses"][status]["content"]
        assert content == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    assert "multipart/form-data" in schema["paths"]["/v1/models"]["post"]["requestBody"]["content"]


def test_create_app_is_independent() -> None:
    assert create_app() is not create_app()


def test_python_m_app_migrate_on_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "scalpel.db"
    env = {"DATABASE_URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "app", "migrate"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    engine = create_engine(f"sqlite:///{db}")
    assert {"job", "job_event", "artifact", "model", "dataset"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()
