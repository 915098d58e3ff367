"""Executors run cells. A cell is plain data in, a :class:`CellResult` out, so where it runs is a detail.

Today cells run in this process; a container or cluster executor implements the same ``run``.
"""

from __future__ import annotations

import os
import traceback
from typing import Protocol

from harness.cell import Cell, CellResult
from harness.tasks import task_for
from harness.tasks.base import RunContext


class Executor(Protocol):
    def run(self, cell: Cell, context: RunContext) -> CellResult:
        """Run one cell; never raises for a failure of the cell itself (only for an interruption)."""


class InProcessExecutor:
    """Runs each cell in the current process; an exception fails the cell, not the run."""

    def run(self, cell: Cell, context: RunContext) -> CellResult:
        task = task_for(cell.task)
        label = f"{cell.model} · {cell.backend} · {cell.device} · seed {cell.seed}"
        context.observer = context.progress.start_cell(label)
        base = {"suite": cell.suite, "model": cell.model, "backend": cell.backend, "device": cell.device,
                "seed": cell.seed}
        try:
            result = task.run(cell, context)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # noqa: BLE001 - any failure of one cell is recorded, the others still run
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            if os.environ.get("HARNESS_TRACEBACK"):
                traceback.print_exc()
            return CellResult("failed", {**base, "status": "failed", "error": message}, {}, message)
        result.record = {**base, **result.record, "status": result.status, "error": result.error}
        return result
