"""`python -m app migrate` (alembic upgrade head), `python -m app serve` (uvicorn) and
`python -m app create-api-key --tenant NAME [--admin]` (prints a new key, once, on stdout;
a tenant's first webhook signing secret, once, on stderr) and `python -m app reap [--loop]`
(requeue jobs of lost workers, dispatch undispatched jobs)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _no_arguments(name: str, argv: list[str]) -> None:
    argparse.ArgumentParser(prog=f"python -m app {name}").parse_args(argv)


def migrate(argv: list[str]) -> int:
    _no_arguments("migrate", argv)
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


def serve(argv: list[str]) -> int:
    _no_arguments("serve", argv)
    import uvicorn

    from app.logging import configure_logging
    from app.settings import get_settings

    settings = get_settings()
    configure_logging(settings)
    uvicorn.run("app.main:app", **uvicorn_options(settings))
    return 0


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's own limits: idle keep-alive, a deadline on request headers (httptools, the
    default parser; app.http_protocol), a cap on connections and requests at once (503 over
    it), the largest request head h11 buffers. Request bodies are timed by the app
    (app.body_deadline), and requests admitted by app.concurrency."""
    from app.http_protocol import with_header_timeout

    return {
        "host": settings.host, "port": settings.port,
        "log_level": settings.log_level.lower(), "log_config": None,
        "timeout_keep_alive": settings.http_keep_alive_s,
        "http": with_header_timeout(settings.http_header_timeout_s),
        "limit_concurrency": settings.http_max_connections or None,
        "h11_max_incomplete_event_size": settings.http_max_header_bytes,
        "timeout_graceful_shutdown": 30,
    }  # fmt: skip


def create_api_key(argv: list[str]) -> int:
    """The key is the only thing written to stdout; the tenant is created if missing. A
    tenant without a webhook signing secret gets its first, shown once on stderr (labelled),
    so that webhooks can be verified from its first job."""
    parser = argparse.ArgumentParser(
        prog="python -m app create-api-key", description="Issue an API key for a tenant."
    )
    parser.add_argument("--tenant", required=True, help="the tenant's name")
    parser.add_argument("--admin", action="store_true", help="a key that sees every tenant")
    args = parser.parse_args(argv)

    from app.db.session import get_sessionmaker
    from app.services.api_keys import issue_with_first_secret

    with get_sessionmaker()() as session:
        try:
            issued, secret = issue_with_first_secret(session, args.tenant, admin=args.admin)
        except ValueError as exc:
            parser.error(str(exc))
        session.commit()
    if secret is not None:
        print(f"{WEBHOOK_SECRET_LABEL} {secret}", file=sys.stderr)
    print(issued.token)
    return 0


# The stderr line of create-api-key that carries a tenant's first webhook signing secret.
WEBHOOK_SECRET_LABEL = (
    "webhook signing secret (shown once; verify webhook deliveries with it; "
    "POST /v1/webhook-secrets rotates it):"
)


def reap(argv: list[str]) -> int:
    """Requeue jobs of lost workers, publish queued jobs the broker never got (or lost), send
    due webhooks and sweep orphans (store objects no row names, upload temporaries, dead
    jobs' checkpoints), once (or, with --loop, every reaper_interval_s until interrupted)."""
    parser = argparse.ArgumentParser(
        prog="python -m app reap",
        description="Requeue jobs whose worker died; dispatch queued jobs never dispatched "
        "or lost by the broker; send due webhooks; sweep orphaned files.",
    )
    parser.add_argument("--loop", action="store_true", help="keep reaping every interval")
    parser.add_argument("--no-sweep", action="store_true", help="do not sweep orphans")
    args = parser.parse_args(argv)

    import time

    from app.services.reaper import reap_once
    from app.services.sweeper import sweep_once
    from app.services.webhook_dispatch import dispatch_once
    from app.settings import get_settings

    log = logging.getLogger("scalpel.reaper")
    while True:
        report = reap_once()
        log.info(
            "reaped: %d requeued, %d failed, %d alive, %d dispatched, %d undispatched, "
            "%d re-dispatched (lost by the broker)",
            len(report.requeued), len(report.failed), len(report.alive),
            len(report.dispatched), report.undispatched, len(report.redispatched),
        )  # fmt: skip
        sent = dispatch_once()
        log.info(
            "webhooks: %d delivered, %d to retry, %d failed",
            sent.succeeded, sent.retrying, sent.failed,
        )  # fmt: skip
        if not args.no_sweep:
            swept = sweep_once()
            log.info(
                "swept: %d orphan object(s), %d temporary file(s), %d job folder(s)",
                len(swept.objects), len(swept.temporaries), len(swept.job_folders),
            )  # fmt: skip
        if not args.loop:
            return 0
        time.sleep(max(get_settings().reaper_interval_s, 1.0))


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "migrate": migrate,
    "serve": serve,
    "create-api-key": create_api_key,
    "reap": reap,
}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's own options")
    args = parser.parse_args(argv)
    return COMMANDS[args.command](args.args)


if __name__ == "__main__":
    sys.exit(main())
