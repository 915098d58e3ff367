"""The local executor: each cell in this process, one after another (the default)."""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Iterator, Sequence

from harness.cells import Cell, CellResult, RunContext
from harness.errors import STORAGE_ERRNOS
from harness.tasks import task_for


def cell_label(cell: Cell) -> str:
    """How the run's log names a cell."""
    return f"{cell.model} · {cell.backend} · {cell.device} · seed {cell.seed}"


def run_cell(cell: Cell, context: RunContext) -> CellResult:
    """Run one cell through its task; an exception fails the cell, not the run (except a full or
    read-only disk, which would fail every cell the same way).

    Shared by every executor (a remote worker calls it too), so a cell's record looks the same
    wherever it ran.
    """
    task = task_for(cell.task)
    context.observer = context.progress.start_cell(cell_label(cell))
    try:
        result = task.run(cell, context)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # noqa: BLE001 - any failure of one cell is recorded, the others still run
        if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
            raise  # a full or read-only disk fails every cell alike: stop the run, say so once (exit 3)
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        if os.environ.get("HARNESS_TRACEBACK"):
            traceback.print_exc()
        return CellResult.failed(cell, message)
    result.record = {**cell.identity(), **result.record, "status": result.status, "error": result.error}
    return result


def placed(result: CellResult, executor: str, node: str, queued_seconds: float) -> CellResult:
    """``result`` with where it ran and how long it waited for a slot, columns every executor fills."""
    result.record.update(executor=executor, node=node, queued_seconds=round(max(0.0, queued_seconds), 3))
    return result


class LocalExecutor:
    """Runs each cell in the current process, in plan order."""

    name = "local"

    def start(self, cells: Sequence[Cell]) -> None:
        """Nothing to set up: the runner has already checked frameworks, devices and data here."""

    def run(self, cells: Sequence[tuple[int, Cell]], context: RunContext) -> Iterator[tuple[int, Cell, CellResult]]:
        # Every cell is queued when the run hands them over; each waits for the ones before it.
        submitted = time.time()
        host = socket.gethostname()
        for position, cell in cells:
            started = time.time()
            yield position, cell, placed(run_cell(cell, context), self.name, host, started - submitted)
