"""Scalpel worker: Celery tasks, pipelines, and the pure compression package."""
