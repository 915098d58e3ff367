"""The local executor: each cell in this process, one after another (the default)."""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator, Sequence

from harness.cells import Cell, CellResult, RunContext
from harness.tasks import task_for


def run_cell(cell: Cell, context: RunContext) -> CellResult:
    """Run one cell through its task; an exception fails the cell, not the run.

    Shared by every executor (a remote worker calls it too), so a cell's record looks the same
    wherever it ran.
    """
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


class LocalExecutor:
    """Runs each cell in the current process, in plan order."""

    name = "local"

    def run(self, cells: Sequence[tuple[int, Cell]], context: RunContext) -> Iterator[tuple[int, Cell, CellResult]]:
        for position, cell in cells:
            yield position, cell, run_cell(cell, context)
