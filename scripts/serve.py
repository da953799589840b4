"""`make serve`: migrate, then run the API and one worker in the foreground on the configured
database and broker (the embedded default, SQLite and a filesystem broker, when none is set).

Ctrl-C (or SIGTERM) stops both. The demo starts this script too. Every endpoint but health
needs an API key: `python -m app create-api-key --tenant NAME` prints one.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("scalpel.serve")


def worker_command(python: str = sys.executable) -> list[str]:
    # The filesystem transport has no broadcast exchange: no gossip, mingle or heartbeats.
    return [
        python, "-m", "celery", "-A", "worker.celery_app", "worker",
        "-Q", os.environ.get("COMPRESS_QUEUE", "compress"),
        "--concurrency", "1", "--loglevel", "INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip


def api_command(python: str = sys.executable) -> list[str]:
    return [python, "-m", "app", "serve"]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s serve %(message)s")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    subprocess.run([sys.executable, "-m", "app", "migrate"], cwd=ROOT, env=env, check=True)
    procs = [
        subprocess.Popen(worker_command(), cwd=ROOT, env=env, start_new_session=True),
        subprocess.Popen(api_command(), cwd=ROOT, env=env, start_new_session=True),
    ]
    log.info("API keys: python -m app create-api-key --tenant NAME [--admin]")
    stopping = False

    def _stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    code = 0
    while not stopping:
        for p in procs:
            if p.poll() is not None:
                log.error("process %s exited with %s; stopping", p.args, p.returncode)
                stopping, code = True, p.returncode or 1
        time.sleep(0.5)
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    return code


if __name__ == "__main__":
    sys.exit(main())
