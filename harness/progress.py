"""Progress of a run: rich bars for cells, epochs and batches on a terminal, plain lines elsewhere.

The console and the clock are passed in, so tests can render into a string buffer at a fixed width.
A training loop reports every batch; the bars take those counts a few times a second (rich redraws
from a thread of its own, and per-batch updates took its lock and the GIL from the training step).
"""

from __future__ import annotations

import time
from typing import Callable

from rich.console import Console
from rich.text import Text
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.backends.metrics import EpochMetrics

#: Seconds between two updates of the batch bar, and between two redraws: a few a second reads as live.
UPDATE_INTERVAL = 0.25


class _DoneColumn(ProgressColumn):
    """``3/9 cells`` on the run's bar (which counts work, not cells), ``completed/total`` on the others."""

    def render(self, task: Task) -> Text:
        cells = task.fields.get("cells")
        if cells is not None:
            return Text(f"{cells[0]}/{cells[1]} cells")
        return Text(f"{task.completed:.0f}/{task.total:.0f}" if task.total is not None else f"{task.completed:.0f}")


class RunProgress:
    """Shows how far a run is; hands each training cell a :class:`CellObserver`.

    The run's bar advances by each cell's ``work`` (its estimated seconds, or FLOPs) as the cell
    finishes, so its time remaining holds when a run's cells differ a hundredfold in size; without
    ``work`` every cell weighs the same.
    """

    def __init__(self, console: Console, total_cells: int, clock: Callable[[], float] = time.monotonic,
                 work: float | None = None) -> None:
        self.console = console
        self.clock = clock
        self.live = console.is_terminal and not console.is_dumb_terminal
        self._progress: Progress | None = None
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description:<28}"), BarColumn(), _DoneColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), console=console, get_time=clock, transient=False,
                refresh_per_second=1 / UPDATE_INTERVAL,
            )
            self._cells = self._progress.add_task("cells", total=work or total_cells, cells=(0, total_cells))
            self._epochs = self._progress.add_task("epochs", total=None, visible=False)
            self._batches = self._progress.add_task("batches", total=None, visible=False)
        self.total = total_cells
        self.done = 0

    def __enter__(self) -> "RunProgress":
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress:
            self._progress.stop()

    def log(self, message: str) -> None:
        """A line above the bars (or on its own without a terminal)."""
        self.console.print(message, markup=False, highlight=False)

    def start_cell(self, label: str, epochs: int | None = None) -> "CellObserver":
        """Announce a cell; the returned observer follows its epochs and batches."""
        if self._progress:
            self._progress.update(self._cells, description=label[:28])
            self._progress.reset(self._epochs, total=epochs, visible=bool(epochs), description="epochs")
        else:
            self.log(f"[{self.done + 1}/{self.total}] {label}")
        return CellObserver(self, epochs)

    def finish_cell(self, summary: str, work: float = 1.0) -> None:
        """Count a cell done: the run's bar advances by its ``work`` (1 when cells weigh the same)."""
        self.done += 1
        if self._progress:
            self._progress.update(self._cells, advance=work, cells=(self.done, self.total))
            self._progress.update(self._epochs, visible=False)
            self._progress.update(self._batches, visible=False)
        self.log(f"  {summary}")


class CellObserver:
    """The per-batch hook a backend calls: a counter, handed to the bars at most every UPDATE_INTERVAL."""

    def __init__(self, run: RunProgress, epochs: int | None) -> None:
        self.run = run
        self.epochs = epochs
        self.pending = 0
        self.next_update = 0.0

    def start_epoch(self, epoch: int, batches: int) -> None:
        progress = self.run._progress
        self.pending = 0
        if progress:
            progress.reset(self.run._batches, total=batches, visible=True, description=f"batches (epoch {epoch})")
            self.next_update = self.run.clock() + UPDATE_INTERVAL

    def advance(self, batches: int = 1) -> None:
        progress = self.run._progress
        if not progress:
            return
        self.pending += batches
        now = self.run.clock()
        if now >= self.next_update:
            self.flush()
            self.next_update = now + UPDATE_INTERVAL

    def flush(self) -> None:
        """Hand the batches counted since the last update to the bar."""
        if self.pending and self.run._progress:
            self.run._progress.advance(self.run._batches, self.pending)
        self.pending = 0

    def end_epoch(self, metrics: EpochMetrics) -> None:
        progress = self.run._progress
        if progress:
            self.flush()
            progress.advance(self.run._epochs)
        validation = "" if metrics.val_accuracy is None else (
            f", val loss {metrics.val_loss:.4f}, val acc {100 * metrics.val_accuracy:.2f}%"
        )
        total = f"/{self.epochs}" if self.epochs else ""
        self.run.log(
            f"  epoch {metrics.epoch}{total}: loss {metrics.train_loss:.4f}, acc {100 * metrics.train_accuracy:.2f}%"
            f"{validation} ({metrics.seconds:.1f} s)"
        )
