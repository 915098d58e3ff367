"""How long a run will take, before it starts: per cell and in total, each figure with its source.

Two sources, the better first:

- **history**: earlier runs of the same suite in the results store, the same model (same FLOPs),
  backend and device. Their measured seconds per epoch, per training image, times this run's images
  and epochs. Timings from the same machine and code carry everything a FLOP count leaves out.
- **calibration**: the cell's FLOPs (:meth:`harness.tasks.base.Task.work`, from the spec alone) over
  the device's calibration throughput (:mod:`harness.calibration`), scaled by how fast training runs
  relative to that workload (:data:`DENSE_EFFICIENCY`, :data:`CONV_EFFICIENCY`), plus a fixed cost
  per optimizer step (:data:`STEP_FLOPS`). The throughput is the run's own calibration, else the
  newest one stored from this host for that device, else one timed now; a GPU that is not here has
  none, and its cells say they cannot be estimated.

An estimate covers training (and a task's own timed work); loading data, the calibrations around the
cells and rendering come on top. docs/performance.md ("Estimates") compares estimates with actual times.
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import calibration
from harness.cells import Cell

if TYPE_CHECKING:
    from rich.table import Table

    from harness.store import ResultsStore
    from harness.suite.schema import Suite
    from harness.tasks.base import CellWork, Task

#: Training FLOP/s over the calibration's FLOP/s, for dense layers and for convolutions: the
#: calibration's matmuls are larger than a batch of 50 makes them, its convolutions of the same kind.
#: Fitted to the smoke runs of every classification suite (docs/performance.md, "Estimates").
DENSE_EFFICIENCY = 0.45
CONV_EFFICIENCY = 1.2
#: The fixed cost of one optimizer step (framework calls, the optimizer, the data batch), in FLOPs at
#: the calibration's speed: what dominates the smallest models.
STEP_FLOPS = 0.2e9
#: Earlier runs whose timings are used, newest first.
HISTORY_RUNS = 3
#: A run estimated at more than this (seconds) on a CPU gets a warning before it starts.
WARN_SECONDS = 3600.0


@dataclass(frozen=True)
class Throughput:
    """A device's calibration: GFLOP/s of the calibration workload, and where the figure came from."""

    device: str
    gflops: float
    source: str


@dataclass(frozen=True)
class CellEstimate:
    """One cell's planned work and estimated seconds (None: cannot estimate), with the source."""

    cell: Cell
    work: "CellWork | None"
    seconds: float | None
    source: str


@dataclass(frozen=True)
class RunEstimate:
    """The estimates of a run's cells, in plan order."""

    cells: list[CellEstimate]

    @property
    def seconds(self) -> float:
        """Seconds of the cells that have an estimate, one after another."""
        return sum(cell.seconds for cell in self.cells if cell.seconds is not None)

    @property
    def unknown(self) -> int:
        """Cells without an estimate."""
        return sum(cell.seconds is None for cell in self.cells)

    @property
    def training_flops(self) -> int:
        return sum(cell.work.training_flops for cell in self.cells if cell.work is not None)

    def weight(self, cell: Cell) -> float:
        """How much of the run ``cell`` is, for the run-wide bar: its estimated seconds, else its FLOPs
        at the run's mean rate, else the mean estimate (equal weights when nothing is known)."""
        known = [c for c in self.cells if c.seconds is not None]
        mean = statistics.fmean(c.seconds for c in known) if known else 1.0
        found = next((c for c in self.cells if c.cell.key == cell.key), None)
        if found is None or found.seconds is not None:
            return found.seconds if found is not None and found.seconds > 0 else mean
        rated = [c for c in known if c.work is not None and c.work.flops]
        if found.work is not None and rated:
            return found.work.flops * sum(c.seconds for c in rated) / sum(c.work.flops for c in rated)
        return mean

    def total(self) -> str:
        """One line: cells, FLOPs and time, and how many cells have no estimate."""
        flops = f"{format_flops(self.training_flops)} of training" if self.training_flops else "FLOPs not known"
        if self.unknown == len(self.cells):
            return f"{len(self.cells)} cell(s), {flops}, cannot be estimated"
        text = f"{len(self.cells)} cell(s), {flops}, estimated {format_seconds(self.seconds)}"
        if self.unknown:
            text += f" (+ {self.unknown} cell(s) that cannot be estimated)"
        return text

    def warning(self, threshold: float = WARN_SECONDS) -> str | None:
        """A line before a long run on a CPU with the ways to shorten it, or None."""
        if self.seconds <= threshold or not any(c.cell.device in ("cpu", "auto") for c in self.cells):
            return None
        return (f"warning: this run is estimated at {format_seconds(self.seconds)} on this CPU; to shorten it: "
                "profile=smoke, device=cuda on a machine with a GPU, or executor=ray to spread the cells "
                "(max_hours=N refuses longer runs)")

    def table(self) -> "Table":
        """The planned cells as a rich table (the dry run's output)."""
        from rich.table import Table

        table = Table(title=None, show_edge=False)
        for name, justify in (("Model", "left"), ("Backend", "left"), ("Device", "left"), ("Seed", "right"),
                              ("Epochs", "right"), ("Train FLOPs", "right"), ("Estimate", "right"),
                              ("Source", "left")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for estimate in self.cells:
            cell, work = estimate.cell, estimate.work
            table.add_row(cell.model, cell.backend, cell.device, str(cell.seed),
                          "-" if work is None else str(work.epochs),
                          "-" if work is None else format_flops(work.training_flops),
                          "?" if estimate.seconds is None else format_seconds(estimate.seconds), estimate.source)
        return table


def estimate_run(task: "Task", suite: "Suite", cells: Sequence[Cell], store: "ResultsStore | None",
                 throughput: Callable[[str], Throughput | None]) -> RunEstimate:
    """Estimate every cell: from the store's history where it has some, else from the device's
    throughput (``throughput(device)``, asked once per device and only when needed)."""
    history = History.read(store, suite.name) if store is not None else History([])
    asked: dict[str, Throughput | None] = {}
    estimates = []
    for cell in cells:
        work = task.work(suite, cell)
        seconds, source = history.seconds(cell, work)
        if seconds is None and work is None:
            source = "cannot estimate: no earlier run, and the task does not count its FLOPs"
        elif seconds is None and work is not None:
            device = resolved_device(cell.device)
            if device not in asked:
                asked[device] = throughput(device)
            found = asked[device]
            if found is None:
                source = f"cannot estimate: no calibration for {device} on this machine"
            else:
                seconds, source = from_calibration(work, found.gflops), f"calibration {found.gflops:.0f} GFLOP/s ({found.source})"
        estimates.append(CellEstimate(cell, work, seconds, source))
    return RunEstimate(estimates)


def from_calibration(work: "CellWork", gflops: float) -> float:
    """Seconds of ``work`` on a device whose calibration runs at ``gflops``."""
    efficiency = work.conv_share * CONV_EFFICIENCY + (1 - work.conv_share) * DENSE_EFFICIENCY
    return (work.flops / efficiency + work.steps * STEP_FLOPS) / (gflops * 1e9)


def resolved_device(device: str) -> str:
    """``auto`` as the backends resolve it, judged without importing a framework: ``cuda`` where an
    NVIDIA driver is installed."""
    if device != "auto":
        return device
    return "cuda" if gpu_present() else "cpu"


def gpu_present() -> bool:
    """Whether this machine has an NVIDIA driver (the cheap sign of a CUDA device; no framework imported)."""
    return Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi") is not None


@dataclass(frozen=True)
class _Timing:
    model: str
    params: Any
    backend: str
    device: str
    flops: Any
    data: Any
    seconds: float
    #: Seconds per epoch per training image (None: the task has no epochs; ``seconds`` is the cell's).
    per_sample_epoch: float | None


class History:
    """Timings of finished cells from the newest :data:`HISTORY_RUNS` runs of a suite that have any."""

    def __init__(self, timings: list[_Timing]) -> None:
        self.timings = timings

    @classmethod
    def read(cls, store: "ResultsStore", suite: str) -> "History":
        timings: list[_Timing] = []
        used = 0
        for run in reversed(store.runs(suite)):
            found = [timing for stored in store.cells(run.run_id) if stored.result.ok
                     for timing in [_timing(stored.cell, stored.record)] if timing is not None]
            if found:
                timings += found
                used += 1
            if used == HISTORY_RUNS:
                break
        return cls(timings)

    def seconds(self, cell: Cell, work: "CellWork | None") -> tuple[float | None, str]:
        """The cell's seconds from the matching timings (their median), or (None, "")."""
        device = resolved_device(cell.device)
        flops = cell_flops(cell)
        matches = [t for t in self.timings
                   if (t.model, t.params, t.backend, t.device, t.flops) == (cell.model, cell.params, cell.backend, device, flops)]
        if work is not None:
            per_epoch = [t.per_sample_epoch for t in matches if t.per_sample_epoch is not None]
            if per_epoch:
                repeats = (cell.config.get("repeats") or 1)
                seconds = statistics.median(per_epoch) * work.train_samples * work.epochs * repeats
                return seconds, f"history ({len(per_epoch)} earlier cell(s))"
            return None, ""
        same_data = [t.seconds for t in matches if t.data == cell.config.get("data")]
        if same_data:
            return statistics.median(same_data), f"history ({len(same_data)} earlier cell(s))"
        return None, ""


def cell_flops(cell: Cell) -> Any:
    """The forward FLOPs per sample of the cell's model, as its record gives them (None without)."""
    for model in cell.config.get("models", []):
        if model.get("name") == cell.model:
            from harness.suite.schema import ModelEntry

            return ModelEntry.model_validate(model).flops
    return None


def _timing(cell: Cell, record: dict[str, Any]) -> _Timing | None:
    """A stored cell's timing, or None when its record has none."""
    device = record.get("device", cell.device)
    per_epoch, samples = record.get("seconds_per_epoch"), record.get("train_samples")
    if per_epoch and samples:
        return _Timing(cell.model, cell.params, cell.backend, device, record.get("flops"), cell.config.get("data"),
                       float(record.get("train_seconds") or 0.0), per_epoch / samples)
    seconds = record.get("train_seconds") or record.get("seconds")
    if seconds:
        return _Timing(cell.model, cell.params, cell.backend, device, record.get("flops"), cell.config.get("data"),
                       float(seconds), None)
    return None


def stored_throughput(store: "ResultsStore | None", device: str, host: str) -> Throughput | None:
    """The newest calibration of ``device`` stored by a run on ``host`` (same workload version)."""
    if store is None:
        return None
    for run in reversed(store.runs()):
        entry = run.environment.get("calibration") or {}
        if (entry.get("device") == device and entry.get("version") == calibration.VERSION
                and run.environment.get("hostname") == host and entry.get("gflops")):
            return Throughput(device, float(entry["gflops"]), f"stored by run {run.run_id}")
    return None


def timed_throughput(device: str) -> Throughput | None:
    """A short calibration timed now on ``device``; None for a GPU this machine does not have."""
    if device != "cpu" and not gpu_present():
        return None
    try:
        entry = calibration.calibrate(device, samples=calibration.CELL_SAMPLES)
    except Exception:  # noqa: BLE001 - a device the framework cannot use has no estimate, which is said
        return None
    return Throughput(device, float(entry["gflops"]), "timed now") if entry.get("gflops") else None


def format_seconds(seconds: float) -> str:
    """``4.2 s``, ``42 s``, ``12 min``, ``3.4 h``, ``2.1 days``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def format_flops(flops: float) -> str:
    """FLOPs with an SI prefix: ``12.4 PFLOP``."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if flops >= scale:
            return f"{flops / scale:.1f} {prefix}FLOP"
    return f"{flops:.0f} FLOP"
