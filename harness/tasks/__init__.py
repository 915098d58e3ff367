"""Tasks: what a suite does with its cells.

Each task is a module with a ``TASK`` object (see :class:`harness.tasks.base.Task`). The core brings
``classify`` and ``pca``; content packages bring more through the ``harness.content`` entry point
group (each such package has a ``TASKS`` mapping of name -> module), so the core never imports them.
Task modules are imported only when used, so loading a suite imports no framework. ``load_suite``
here is the suite loader with the task's own checks added (its name, its options).
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points

from pydantic import ValidationError

from harness.errors import UserError
from harness.suite import load as suite_load
from harness.suite.overrides import Override
from harness.suite.schema import Suite
from harness.tasks.base import Task

#: The core's own tasks: name -> the module holding its ``TASK``.
CORE_TASKS = {
    "classify": "harness.tasks.classify",
    "pca": "harness.tasks.pca",
}

#: The entry point group a content package registers itself under.
CONTENT_GROUP = "harness.content"


@functools.cache
def registered_tasks() -> dict[str, str]:
    """Every task name -> its module: the core's, then each registered content package's."""
    tasks = dict(CORE_TASKS)
    for entry in entry_points(group=CONTENT_GROUP):
        content = entry.load()
        clashes = sorted(set(tasks) & set(content.TASKS))
        if clashes:
            raise UserError(f"content package {entry.value!r} redefines task(s) {', '.join(clashes)}")
        tasks.update(content.TASKS)
    return tasks


def task_for(name: str) -> Task:
    """The task called ``name``; an unknown name is a UserError listing the known ones."""
    tasks = registered_tasks()
    if name not in tasks:
        raise UserError(f"unknown task {name!r}; tasks: {', '.join(tasks)}")
    try:
        module = importlib.import_module(tasks[name])
    except ModuleNotFoundError as error:
        if error.name == tasks[name]:
            raise UserError(f"task {name!r} is not available in this version of harness") from None
        raise
    return module.TASK


def check_task(suite: Suite, where: str) -> None:
    """The suite's task exists and its ``options`` table is valid for it (one-line UserError if not)."""
    if suite.task not in registered_tasks():
        raise UserError(f"{where}: task: unknown task {suite.task!r}; allowed: {', '.join(registered_tasks())}")
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
