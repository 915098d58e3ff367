"""Progress output, rendered into a string buffer at a fixed width."""

from __future__ import annotations

import io

from rich.console import Console

from harness.backends.metrics import EpochMetrics
from harness.progress import RunProgress


def test_plain_lines_when_not_a_terminal():
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, force_terminal=False)
    with RunProgress(console, total_cells=2) as progress:
        observer = progress.start_cell("MLP Baseline Model · torch · cpu · seed 0")
        observer.epochs = 2
        observer.start_epoch(1, 90)
        observer.advance(90)
        observer.end_epoch(EpochMetrics(1, 0.51234, 0.9, 0.3, 0.912, 1.25))
        progress.finish_cell("1,796,010 params, test 90.10%")
    assert buffer.getvalue().splitlines() == [
        "[1/2] MLP Baseline Model · torch · cpu · seed 0",
        "  epoch 1/2: loss 0.5123, acc 90.00%, val loss 0.3000, val acc 91.20% (1.2 s)",
        "  1,796,010 params, test 90.10%",
    ]
    assert "\x1b" not in buffer.getvalue()


def test_bars_on_a_terminal_use_the_given_clock():
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, force_terminal=True, color_system=None)
    ticks = iter(range(1000))
    with RunProgress(console, total_cells=1, clock=lambda: float(next(ticks))) as progress:
        assert progress.live
        observer = progress.start_cell("cell", 1)
        observer.start_epoch(1, 10)
        observer.advance(10)
        progress.finish_cell("done")
    text = buffer.getvalue()
    assert "cells" in text and "done" in text


class MockClock:
    """A clock that moves only when told (rich's tests use the same idea)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_batch_updates_reach_the_bar_a_few_times_a_second_and_every_batch_is_counted():
    from harness.progress import UPDATE_INTERVAL

    clock = MockClock()
    console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system=None)
    with RunProgress(console, total_cells=1, clock=clock) as progress:
        observer = progress.start_cell("cell", 1)
        bar = progress._progress._tasks[progress._batches]
        observer.start_epoch(1, 1000)
        for _ in range(400):  # a fast loop: 400 batches within one update interval
            observer.advance(1)
        assert bar.completed == 0 and observer.pending == 400
        clock.now += UPDATE_INTERVAL
        observer.advance(1)
        assert bar.completed == 401 and observer.pending == 0
        for _ in range(99):
            observer.advance(1)
        assert bar.completed == 401
        observer.end_epoch(EpochMetrics(1, 0.5, 0.9, None, None, 1.0))  # the epoch's end shows every batch
        assert bar.completed == 500
        progress.finish_cell("done")


def test_the_run_bar_advances_by_work_not_by_cell_count():
    # Three cells, the last 98 times the others: after two (10 s each), 2 % of the run is done, and the
    # time remaining is the 980 s the last will take at that rate, not the 10 s a count of cells says.
    clock = MockClock()
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, force_terminal=True, color_system=None)
    with RunProgress(console, total_cells=3, clock=clock, work=100.0) as progress:
        bar = progress._progress._tasks[progress._cells]
        for label in ("first", "second"):
            progress.start_cell(label, 1)
            clock.now += 10.0
            progress.finish_cell(f"{label} done", work=1.0)
        assert (bar.completed, bar.total, bar.percentage) == (2.0, 100.0, 2.0)
        progress._progress.refresh()
        line = [line for line in buffer.getvalue().splitlines() if "cells" in line][-1]
        assert "2/3 cells" in line and "0:16:20" in line  # elapsed 0:00:20, remaining 980 s
        progress.start_cell("large", 1)
        clock.now += 980.0
        progress.finish_cell("large done", work=98.0)
        assert bar.finished
