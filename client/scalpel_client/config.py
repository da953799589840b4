"""Where the client finds the API: arguments, else the environment (SCALPEL_URL,
SCALPEL_API_KEY), else a TOML file (SCALPEL_CONFIG, or ~/.config/scalpel/config.toml)::

    url = "https://scalpel.example.com"
    api_key = "sk_..."
    timeout = 30
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scalpel_client.errors import ScalpelError

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 30.0
URL_ENV = "SCALPEL_URL"
API_KEY_ENV = "SCALPEL_API_KEY"
CONFIG_ENV = "SCALPEL_CONFIG"


@dataclass(frozen=True)
class ClientConfig:
    url: str = DEFAULT_URL
    api_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S


def default_config_path(env: Mapping[str, str]) -> Path:
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "scalpel" / "config.toml"


def read_config_file(path: Path) -> dict[str, Any]:
    """The file's table; {} when it does not exist."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScalpelError(f"cannot read the config file {path}: {exc}") from exc


def resolve_config(
    url: str | None = None,
    api_key: str | None = None,
    *,
    timeout: float | None = None,
    config_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ClientConfig:
    """Arguments win over the environment, which wins over the config file."""
    env = os.environ if env is None else env
    explicit = config_path is not None or bool(env.get(CONFIG_ENV))
    path = Path(config_path).expanduser() if config_path else default_config_path(env)
    file = read_config_file(path)
    if explicit and not file and not path.exists():
        raise ScalpelError(f"config file {path} does not exist")
    chosen_url = url or env.get(URL_ENV) or _str(file, "url", path) or DEFAULT_URL
    chosen_key = api_key or env.get(API_KEY_ENV) or _str(file, "api_key", path)
    raw_timeout = timeout if timeout is not None else file.get("timeout", DEFAULT_TIMEOUT_S)
    if not isinstance(raw_timeout, int | float) or raw_timeout <= 0:
        raise ScalpelError(f"{path}: timeout must be a positive number")
    return ClientConfig(url=check_url(chosen_url), api_key=chosen_key, timeout=float(raw_timeout))


def check_url(url: str) -> str:
    """An http(s) base URL without its trailing slash; ScalpelError for anything else."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        ok = False
    if not ok:
        raise ScalpelError(f"the API URL must look like http://host:port, not {url!r}")
    return url.rstrip("/")


def _str(file: Mapping[str, Any], key: str, path: Path) -> str | None:
    value = file.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ScalpelError(f"{path}: {key} must be a string")
    return value
