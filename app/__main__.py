"""`python -m app migrate` (alembic upgrade head) and `python -m app serve` (uvicorn)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def migrate() -> int:
    from alembic.config import Config

    from alembic import command
    from app.settings import get_settings

    settings = get_settings()
    if settings.database_url.startswith("sqlite:///"):
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["url"] = settings.database_url
    command.upgrade(cfg, "head")
    return 0


def serve() -> int:
    import uvicorn

    from app.settings import get_settings

    settings = get_settings()
    uvicorn.run("app.main:app", host=settings.host, port=settings.port, log_level="info")
    return 0


COMMANDS: dict[str, Callable[[], int]] = {"migrate": migrate, "serve": serve}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS))
    args = parser.parse_args(argv)
    return COMMANDS[args.command]()


if __name__ == "__main__":
    sys.exit(main())
