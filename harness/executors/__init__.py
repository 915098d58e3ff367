"""Executors run cells: plain JSON data in, a :class:`~harness.cells.CellResult` out per cell.

An executor gets the cells still to run and yields each one back as it finishes, in any order; the
caller (``harness run``) alone writes the results store, so where a cell ran changes nothing about
what is kept. ``local`` runs them one after another in this process; others register here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from harness.cells import Cell, CellResult, RunContext
from harness.errors import UserError

#: Executor name -> "module:class"; imported only when chosen, so a missing optional dependency
#: (e.g. ray) costs nothing until it is asked for.
EXECUTORS = {
    "local": "harness.executors.local:LocalExecutor",
}


class Executor(Protocol):
    name: str

    def run(self, cells: Sequence[tuple[int, Cell]], context: RunContext) -> Iterator[tuple[int, Cell, CellResult]]:
        """Run ``(position, cell)`` pairs; yield each back with its result as it finishes.

        A failure of a cell is a failed :class:`CellResult`, never an exception; an interruption
        (Ctrl-C) propagates after the executor has stopped what it started.
        """


def executor_named(name: str, **options: Any) -> Executor:
    """The executor called ``name``, built with ``options``; an unknown name lists the known ones."""
    if name not in EXECUTORS:
        raise UserError(f"executor={name!r}: allowed: {', '.join(EXECUTORS)}")
    module_name, class_name = EXECUTORS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)(**options)
