"""Tasks: what a suite does with its cells (classify, pca, perceptron, search, visualize, mtl).

Each task is a module with a ``TASK`` object (see :class:`harness.tasks.base.Task`). They are found
here by name and imported only when used, so loading a suite imports no framework.
"""

from __future__ import annotations

import importlib

from harness.errors import UserError
from harness.tasks.base import Task

_MODULES = {
    "classify": "harness.tasks.classify",
    "pca": "harness.tasks.pca",
    "perceptron": "harness.tasks.perceptron",
    "search": "harness.tasks.search",
    "visualize": "harness.tasks.visualize",
    "mtl": "harness.tasks.mtl",
}


def task_for(name: str) -> Task:
    """The task called ``name``; an unknown name is a UserError listing the known ones."""
    if name not in _MODULES:
        raise UserError(f"unknown task {name!r}; tasks: {', '.join(_MODULES)}")
    try:
        module = importlib.import_module(_MODULES[name])
    except ModuleNotFoundError as error:
        if error.name == _MODULES[name]:
            raise UserError(f"task {name!r} is not available in this version of harness") from None
        raise
    return module.TASK


def options_model_named(title: str):
    """The options model class whose pydantic title is ``title`` (for error messages), or None."""
    for name in _MODULES:
        try:
            options = task_for(name).Options
        except UserError:
            continue
        if options.__name__ == title:
            return options
    return None
