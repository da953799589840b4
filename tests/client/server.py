"""A real API server process for client and CLI tests: SQLite and a filesystem broker in a
temp dir, migrated with `python -m app migrate`, a key from `python -m app create-api-key`,
then `python -m app serve` on a free port. No worker: jobs stay queued; artifacts are put in
through the storage and repository layers."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import Artifact, Job
from app.db.session import make_engine
from app.repositories import artifacts as artifacts_repo
from app.storage import LocalStore
from tests.e2e.harness import ROOT, base_env, free_port, process
from tests.factories.archives import model_files, zip_bytes

TENANT = "t1"


@dataclass
class Server:
    url: str
    api_key: str
    tmp: Path
    db_url: str
    env: dict[str, str]
    log: Path

    def add_artifact(
        self, job_id: str, data: bytes, kind: str = "model", *, filename: str = "model.tar.gz",
        sha256: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Store data as the job's artifact; sha256 overrides the recorded digest."""
        stored = LocalStore(Path(self.env["STORAGE_DIR"])).put_stream(io.BytesIO(data))
        engine = make_engine(self.db_url)
        try:
            with Session(engine) as session:
                art = artifacts_repo.add(session, Artifact(
                    job_id=uuid.UUID(job_id), kind=kind, filename=filename,
                    media_type="application/octet-stream", size_bytes=stored.size_bytes,
                    sha256=sha256 or stored.sha256, storage_key=stored.key,
                ))  # fmt: skip
                session.commit()
                return {"id": str(art.id), "sha256": art.sha256}
        finally:
            engine.dispose()

    def expire_artifact(self, artifact_id: str) -> None:
        """As retention does: the artifact stays listed, with expired_at (its download: 410)."""
        engine = make_engine(self.db_url)
        try:
            with Session(engine) as session:
                art = session.get(Artifact, uuid.UUID(artifact_id))
                assert art is not None
                art.expired_at = utcnow()
                session.commit()
        finally:
            engine.dispose()

    def finish_job(self, job_id: str, status: str, **fields: Any) -> None:
        """Move a job to status as a worker would (stage, progress, metrics, error_code...)."""
        engine = make_engine(self.db_url)
        try:
            with Session(engine) as session:
                job = session.get(Job, uuid.UUID(job_id))
                assert job is not None
                job.status = status
                for name, value in fields.items():
                    setattr(job, name, value)
                session.commit()
        finally:
            engine.dispose()


def _run(args: list[str], env: dict[str, str]) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, f"python -m app {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"server not healthy in {timeout_s} s:\n{log.read_text()[-4000:]}")


@contextmanager
def running_server(tmp: Path) -> Iterator[Server]:
    port = free_port()
    db_url = f"sqlite:///{tmp / 'scalpel.db'}"
    data_dir = tmp / "data"
    (data_dir / "sst2").mkdir(parents=True)
    (data_dir / "sst2" / "train.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t0\n")
    env = base_env(tmp, DATABASE_URL=db_url, PORT=str(port), HOST="127.0.0.1",
                   DATA_DIR=str(data_dir))  # fmt: skip
    for name in ("SCALPEL_URL", "SCALPEL_API_KEY", "SCALPEL_CONFIG", "BROKER_URL"):
        env.pop(name, None)
    _run(["migrate"], env)
    key = _run(["create-api-key", "--tenant", TENANT], env).strip().splitlines()[-1]
    log = tmp / "api.log"
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, "-m", "app", "serve"], env, log) as proc:
        _wait_healthy(url, proc, log, timeout_s=60)
        yield Server(url=url, api_key=key, tmp=tmp, db_url=db_url, env=env, log=log)


def tiny_model_zip(dest: Path) -> Path:
    dest.write_bytes(zip_bytes(model_files()))
    return dest


def tiny_dataset_csv(dest: Path, rows: int = 16) -> Path:
    words = ("bad", "good")
    lines = ["text,label"] + [f"{words[i % 2]} movie {i},{i % 2}" for i in range(rows)]
    dest.write_text("\n".join(lines) + "\n")
    return dest


def spec(**overrides: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"model": "minilm-l6", "dataset": {"name": "tweets"},
                           "pruning": {"method": "magnitude", "sparsity": 0.5}}  # fmt: skip
    out.update(overrides)
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
