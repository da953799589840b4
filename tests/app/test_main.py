from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, inspect, text

import app.__main__ as app_main
from app.main import app, create_app
from tests.app.conftest import MakeClient

ROOT = Path(__file__).resolve().parents[2]


def test_module_level_app_for_uvicorn() -> None:
    assert app.title == "Scalpel"
    assert {"migrate", "serve", "create-api-key"} <= set(app_main.COMMANDS)


def test_openapi_declares_models_and_problems(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    comps = schema["components"]["schemas"]
    assert {"JobSubmission", "JobOut", "Problem", "ModelOut", "DatasetOut", "ArtifactList"} <= set(
        comps
    )
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


def test_create_api_key_prints_a_working_key(
    pg_url: str, pg_engine: Engine, make_client: MakeClient
) -> None:
    """A real process on the test database: stdout is the key and nothing else, the tenant
    is created once, and the key authenticates as that tenant (an admin with --admin)."""
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    env = {"DATABASE_URL": pg_url, "PATH": "/usr/bin:/bin"}

    def create(*extra: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "app", "create-api-key", "--tenant", tenant, *extra],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.endswith("\n") and proc.stdout.count("\n") == 1
        return proc.stdout.strip()

    try:
        key, admin_key = create(), create("--admin")
        assert key.startswith("sk_") and key != admin_key
        with pg_engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT k.is_admin, k.hash FROM api_key k JOIN tenant t ON t.id = k.tenant_id"
                    " WHERE t.name = :name ORDER BY k.is_admin"
                ),
                {"name": tenant},
            ).all()
        assert [r.is_admin for r in rows] == [False, True]
        assert all(key not in r.hash and admin_key not in r.hash for r in rows)
        client = make_client(key=None)
        assert client.get("/v1/jobs", headers={"X-API-Key": key}).status_code == 200
        assert client.get("/v1/jobs", headers={"X-API-Key": "sk_0_x"}).status_code == 401
    finally:
        with pg_engine.begin() as conn:
            conn.execute(text("DELETE FROM tenant WHERE name = :name"), {"name": tenant})


def test_create_api_key_shows_a_new_tenants_first_webhook_secret_on_stderr(
    pg_url: str, pg_engine: Engine
) -> None:
    """stdout stays the key alone; the first key of a tenant without a signing secret prints
    its first secret once, labelled, on stderr; the next key of the tenant prints none."""
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    env = {"DATABASE_URL": pg_url, "PATH": "/usr/bin:/bin"}

    def create() -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "app", "create-api-key", "--tenant", tenant],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count("\n") == 1 and proc.stdout.startswith("sk_")
        return proc

    try:
        first, second = create(), create()
        [line] = [
            x for x in first.stderr.splitlines() if x.startswith(app_main.WEBHOOK_SECRET_LABEL)
        ]
        secret = line.removeprefix(app_main.WEBHOOK_SECRET_LABEL).strip()
        assert secret.startswith("whsec_") and secret not in first.stdout
        assert "whsec_" not in second.stderr
        with pg_engine.connect() as conn:
            stored = conn.execute(
                text("SELECT s.secret FROM webhook_secret s JOIN tenant t ON t.id = s.tenant_id "
                     "WHERE t.name = :name"), {"name": tenant},
            ).scalars().all()  # fmt: skip
        assert stored == [secret]
    finally:
        with pg_engine.begin() as conn:  # its keys and secrets go with it (ON DELETE CASCADE)
            conn.execute(text("DELETE FROM tenant WHERE name = :name"), {"name": tenant})


def test_create_api_key_needs_a_tenant_name(tmp_path: Path) -> None:
    for args in ([], ["--tenant", "  "]):
        proc = subprocess.run(
            [sys.executable, "-m", "app", "create-api-key", *args], cwd=ROOT,
            env={"DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}", "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 2 and proc.stdout == ""


def test_serve_passes_uvicorns_own_limits() -> None:
    """`python -m app serve`: a deadline on request headers (the httptools protocol of
    app.http_protocol), a cap on connections, the largest h11 request head, idle keep-alive."""
    from app.http_protocol import HeaderDeadlineProtocol
    from app.settings import Settings

    options = app_main.uvicorn_options(
        Settings(http_header_timeout_s=3, http_max_connections=0, http_max_header_bytes=8192)
    )
    protocol = options["http"]
    assert issubclass(protocol, HeaderDeadlineProtocol) and protocol.header_timeout_s == 3
    assert options["limit_concurrency"] is None  # 0: no cap
    assert options["h11_max_incomplete_event_size"] == 8192
    defaults = app_main.uvicorn_options(Settings())
    assert defaults["limit_concurrency"] == 2048 and defaults["timeout_keep_alive"] == 30


def test_root_redirects_to_the_dashboard_which_links_the_docs() -> None:
    client = TestClient(create_app())
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/dashboard/"
    page = client.get("/")
    assert page.status_code == 200 and str(page.url).endswith("/dashboard/")
    header = page.text[page.text.index('<header class="top">') : page.text.index("</header>")]
    links = re.findall(r'<a [^>]*href="([^"]+)"', header)
    assert {"/docs", "/redoc"} <= set(links)
    for link in ("/docs", "/redoc"):
        assert client.get(link).status_code == 200


def test_root_redirect_keeps_the_proxy_prefix() -> None:
    r = TestClient(create_app(), root_path="/scalpel").get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/scalpel/dashboard/"
