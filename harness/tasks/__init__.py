"""Tasks: what a suite does with its cells (classify, pca, perceptron, search, visualize, mtl).

Each task is a module with a ``TASK`` object (see :class:`harness.tasks.base.Task`); ``TASKS`` below
is the one list of them. They are imported only when used, so loading a suite imports no framework.
``load_suite`` here is the suite loader with the task's own checks added (its name, its options).
"""

from __future__ import annotations

import importlib

from pydantic import ValidationError

from harness.errors import UserError
from harness.suite import load as suite_load
from harness.suite.overrides import Override
from harness.suite.schema import Suite
from harness.tasks.base import Task

#: Task name -> the module holding its ``TASK``.
TASKS = {
    "classify": "harness.tasks.classify",
    "pca": "harness.tasks.pca",
    "perceptron": "harness.tasks.perceptron",
    "search": "harness.tasks.search",
    "visualize": "harness.tasks.visualize",
    "mtl": "harness.tasks.mtl",
}


def task_for(name: str) -> Task:
    """The task called ``name``; an unknown name is a UserError listing the known ones."""
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    try:
        module = importlib.import_module(TASKS[name])
    except ModuleNotFoundError as error:
        if error.name == TASKS[name]:
            raise UserError(f"task {name!r} is not available in this version of harness") from None
        raise
    return module.TASK


def check_task(suite: Suite, where: str) -> None:
    """The suite's task exists and its ``options`` table is valid for it (one-line UserError if not)."""
    if suite.task not in TASKS:
        raise UserError(f"{where}: task: unknown task {suite.task!r}; allowed: {', '.join(TASKS)}")
    options = task_for(suite.task).Options
    try:
        options.model_validate(suite.options)
    except ValidationError as error:
        message = suite_load.describe_validation_error(error, suite.options, prefix="options", root=options)
        raise UserError(f"{where}: {message}") from None


def load_suite(name_or_path: str, profile: str = "full", overrides: list[Override] | tuple[Override, ...] = ()) -> Suite:
    """Read, override and validate a suite, its task and the task's options (see :mod:`harness.suite.load`)."""
    return suite_load.load_suite(name_or_path, profile, overrides, check=check_task)


def validate_suite(raw: dict, where: str) -> Suite:
    """Validate stored suite data (a run's resolved settings) with the task's checks."""
    return suite_load.validate_suite(raw, where, check=check_task)
