"""No Docker engine runs here: check that the compose file and Dockerfile name real entry
points, real build targets, and environment variables that the Settings object reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

import app.__main__ as app_main
from app.settings import Settings
from scripts.serve import worker_command

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SETTINGS_ENV = {name.upper() for name in Settings.model_fields}
# Read by libraries, not by Settings.
LIBRARY_ENV = {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}
IMAGE_ENV = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}


def _services() -> dict[str, Any]:
    services: dict[str, Any] = COMPOSE["services"]
    return services


def _dockerfile_targets() -> set[str]:
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", DOCKERFILE, flags=re.MULTILINE))


def test_expected_services() -> None:
    assert {"postgres", "redis", "migrate", "api", "worker"} <= set(_services())


def test_build_targets_exist() -> None:
    targets = _dockerfile_targets()
    assert {"api", "worker"} <= targets
    for name, svc in _services().items():
        if "build" in svc:
            assert svc["build"]["target"] in targets, name


def test_api_commands_are_real_subcommands() -> None:
    for name in ("api", "migrate"):
        cmd = _services()[name]["command"]
        assert cmd[:3] == ["python", "-m", "app"], name
        assert cmd[3] in app_main.COMMANDS, (name, cmd)


def test_worker_command_matches_the_celery_app_and_queue() -> None:
    cmd = _services()["worker"]["command"]
    assert cmd[:4] == ["celery", "-A", "worker.celery_app", "worker"]
    queue = cmd[cmd.index("-Q") + 1]
    assert queue == Settings().compress_queue
    assert queue == worker_command()[worker_command().index("-Q") + 1]
    import worker.celery_app as celery_module

    assert celery_module.celery_app.conf.task_default_queue == queue
    assert '"worker.celery_app"' in DOCKERFILE


def test_environment_names_settings_fields() -> None:
    for name, svc in _services().items():
        env = svc.get("environment", {})
        for key in env:
            assert key in SETTINGS_ENV | LIBRARY_ENV | IMAGE_ENV, (name, key)
    api_env = _services()["api"]["environment"]
    worker_env = _services()["worker"]["environment"]
    # API and worker must share the registry, the broker and the store.
    for key in ("DATABASE_URL", "REDIS_URL", "STORAGE_DIR"):
        assert api_env[key] == worker_env[key], key


def test_compose_database_url_uses_the_postgres_service() -> None:
    pg = _services()["postgres"]["environment"]
    url = _services()["api"]["environment"]["DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://")
    assert (
        f"{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}" in url
    )


def test_image_installs_the_local_packages_the_venv_installs() -> None:
    """Every local package the Makefile installs (the client under client/) is copied into
    the image and installed before the project, so the `scalpel` CLI imports in it."""
    makefile = (ROOT / "Makefile").read_text()
    local = set(re.findall(r"pip install -q -e \./(\w+)", makefile.replace("$(PIP)", "pip")))
    assert local, "the Makefile installs no local package: update this test"
    for package in local:
        assert re.search(rf"^COPY {package} \./{package}$", DOCKERFILE, flags=re.MULTILINE)
        assert DOCKERFILE.count(f"pip install ./{package}") == len(_dockerfile_targets() - {"base"})
