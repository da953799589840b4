"""Tasks by name (`spec.task`): each module exposes `TASK`, an object that implements
`worker.pipelines.tasks.base.Task`. Adding a task is its module, its tests and one line here."""

from __future__ import annotations

import importlib

from app.catalog import TaskName
from worker.pipelines.tasks.base import Task

MODULES: dict[TaskName, str] = {
    "sequence_classification": "worker.pipelines.tasks.classification",
    "regression": "worker.pipelines.tasks.regression",
    "token_classification": "worker.pipelines.tasks.token_classification",
    "question_answering": "worker.pipelines.tasks.question_answering",
}


def get_task(name: TaskName) -> Task:
    task: Task = importlib.import_module(MODULES[name]).TASK
    return task
