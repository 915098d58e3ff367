"""Executors run cells: plain JSON data in, a :class:`~harness.cells.CellResult` out per cell.

An executor gets the cells still to run and yields each one back as it finishes, in any order; the
caller (``harness run``) alone writes the results store, so where a cell ran changes nothing about
what is kept. ``local`` runs them one after another in this process; ``ray`` hands them to a Ray
cluster (a local one started for the run, or an existing one).

A cell may name other cells it needs (``Cell.needs``, e.g. a search's retrain needs its trials):
:func:`run_in_stages` runs such a cell only after those have finished, and hands it their records
through ``RunContext.inputs``, so a cell never reads another cell's files and may run on any machine.
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
    "ray": "harness.executors.ray:RayExecutor",
}


class Executor(Protocol):
    name: str

    def start(self, cells: Sequence[Cell]) -> None:
        """Get ready to run ``cells`` (connect to a cluster, check they fit it); called before the run
        writes anything, so a problem here is a :class:`~harness.errors.UserError` and leaves nothing behind."""

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


def stages(cells: Sequence[tuple[int, Cell]]) -> list[list[tuple[int, Cell]]]:
    """``cells`` in stages: a cell comes after every cell it needs that is also to run.

    Needs met earlier (finished in an earlier attempt of the run) or not in ``cells`` at all hold
    nothing back; a cycle is a programming error of the task and raises.
    """
    waiting = list(cells)
    placed: set[str] = set()
    pending = {cell.key for _, cell in cells}
    out: list[list[tuple[int, Cell]]] = []
    while waiting:
        ready = [(p, c) for p, c in waiting if all(key in placed or key not in pending for key in c.needs)]
        if not ready:
            raise RuntimeError(f"cells wait for each other: {', '.join(c.key for _, c in waiting)}")
        out.append(ready)
        placed.update(cell.key for _, cell in ready)
        waiting = [(p, c) for p, c in waiting if c.key not in placed]
    return out


def run_in_stages(executor: Executor, cells: Sequence[tuple[int, Cell]],
                  context: RunContext) -> Iterator[tuple[int, Cell, CellResult]]:
    """Run ``cells`` on ``executor`` stage by stage (see :func:`stages`), yielding results as they come.

    Each ok record is added to ``context.inputs`` (which the runner fills with the run's earlier
    finished cells), so the next stage's cells are handed the results they need.
    """
    for stage in stages(cells):
        for position, cell, result in executor.run(stage, context):
            if result.ok:
                context.inputs[cell.key] = result.record
            yield position, cell, result
