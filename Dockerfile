# syntax=docker/dockerfile:1
# Two targets: `api` (no torch: small) and `worker` (torch, transformers, the built-in model).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
WORKDIR /srv
COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY app ./app
COPY worker ./worker
COPY client ./client
RUN useradd --create-home --uid 10001 scalpel && mkdir -p /data && chown scalpel /data

FROM base AS api
# the client package first: the `scalpel` CLI in the image imports it
RUN pip install ./client && pip install .
ENV HOST=0.0.0.0 PORT=8000
EXPOSE 8000
USER scalpel
CMD ["python", "-m", "app", "serve"]

FROM base AS worker
# torch first, pinned, so the extras do not pull another build. On a CUDA host this is the
# CUDA wheel from PyPI; for CPU-only images use the CPU index instead.
RUN pip install torch==2.13.0 && pip install ./client && pip install ".[worker]"
USER scalpel
CMD ["celery", "-A", "worker.celery_app", "worker", "-Q", "compress", "--concurrency", "1", "--loglevel", "INFO"]
