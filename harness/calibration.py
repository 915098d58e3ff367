"""A fixed micro-benchmark timed alongside every run, so timings can be compared across machines.

The workload is the two kernels the report's models spend their time in: a square single-precision
matrix multiply (dense layers) and a 3x3 convolution over an MNIST-sized batch (conv layers). It is
timed the way the training loop is (same framework, same thread count, device synchronised before the
clock is read), warmed up first, and repeated; the median seconds per pass is the run's calibration,
and the interquartile range of the samples, relative to the median, is its ``spread``: how steady
the machine was while it was measured. A comparison of runs from two machines multiplies the
current run's timings by ``baseline_seconds / current_seconds``
(:func:`harness.compare.comparison.time_scale`), turning "seconds here" into "seconds on the
baseline's machine".

Each sample times as many passes as fill ``min_sample_seconds``: a fast machine runs one pass in a few
milliseconds, where the timer, the scheduler's time slice and one interrupt are the whole
measurement (docs/regression-gate.md shows how far off that went). Samples are per pass, so the unit
does not depend on how many passes a sample took.

The workload must never change silently: a different workload is a different unit, so it carries a
``version``, and timings are only scaled between calibrations of the same version.

:func:`for_cells` decides whether and where a run is calibrated, and the :class:`RunCalibration` it
returns takes the run's calibrations: one before the cells, a short one after each cell (so each cell
has the machine's speed while it ran), and one after the last, merged with the first.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.cells import Cell
    from harness.tasks.base import Task

VERSION = 1
MATMUL_SIZE = 512
CONV_BATCH, CONV_CHANNELS, IMAGE = 32, 32, 28
#: Samples per calibration, and the least time each one lasts: 15 x 0.1 s, about 1.5 s in all.
SAMPLES = 15
MIN_SAMPLE_SECONDS = 0.1
#: Samples of the short calibration the runner takes after each cell (about half a second).
CELL_SAMPLES = 5


def calibrate(device: str = "cpu", samples: int = SAMPLES, min_sample_seconds: float = MIN_SAMPLE_SECONDS,
              clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Time the calibration workload on ``device`` (``cpu`` or ``cuda``) and describe it.

    Returns the median seconds per pass over ``samples`` timed samples (after an untimed warm-up
    pass), each sample, their spread, the passes per sample, the achieved GFLOP/s and the thread
    count: the entry the runner stores as ``environment['calibration']``. Runs on the thread count
    the training loop uses (``$HARNESS_THREADS`` or the usable cores), whatever torch was set to.
    """
    import torch
    from torch.nn import functional as F

    from harness.threads import framework_threads

    generator = torch.Generator().manual_seed(0)
    a = torch.rand(MATMUL_SIZE, MATMUL_SIZE, generator=generator).to(device)
    b = torch.rand(MATMUL_SIZE, MATMUL_SIZE, generator=generator).to(device)
    images = torch.rand(CONV_BATCH, 1, IMAGE, IMAGE, generator=generator).to(device)
    kernel1 = torch.rand(CONV_CHANNELS, 1, 3, 3, generator=generator).to(device)
    kernel2 = torch.rand(CONV_CHANNELS, CONV_CHANNELS, 3, 3, generator=generator).to(device)

    def synchronize() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def workload() -> None:
        with torch.inference_mode():
            for _ in range(4):
                torch.mm(a, b)
            F.conv2d(F.relu(F.conv2d(images, kernel1)), kernel2)

    def timed(passes: int) -> float:
        started = clock()
        for _ in range(passes):
            workload()
        synchronize()
        return (clock() - started) / passes

    threads_before = torch.get_num_threads()
    torch.set_num_threads(framework_threads())
    try:
        workload()  # warm-up: first calls allocate and pick kernels
        synchronize()
        one = timed(1)
        passes = max(1, math.ceil(min_sample_seconds / one)) if one > 0 else 1
        per_pass = [timed(passes) for _ in range(samples)]
        threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads_before)
    return describe({
        "version": VERSION,
        "workload": f"4x matmul {MATMUL_SIZE}^2 fp32 + conv3x3 1->{CONV_CHANNELS}->{CONV_CHANNELS} "
                    f"on {CONV_BATCH}x{IMAGE}x{IMAGE}",
        "device": device,
        "threads": threads,
        "passes_per_sample": passes,
        "samples": per_pass,
    })


def spread(samples: Sequence[float]) -> float | None:
    """The interquartile range of ``samples`` as a percentage of their median (None for fewer than
    three samples or a zero median): how steady the same fixed work ran."""
    if len(samples) < 3:
        return None
    q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return 100.0 * (q3 - q1) / median if median > 0 else None


def describe(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` with its median ``seconds``, ``spread`` and ``gflops`` worked out from its samples."""
    samples = list(entry["samples"])
    seconds = statistics.median(samples)
    return {**entry, "samples": samples, "seconds": seconds, "spread": spread(samples),
            "gflops": workload_flops() / seconds / 1e9 if seconds > 0 else None}


def workload_flops() -> int:
    """Floating-point operations of one pass of the workload (multiply-add = 2)."""
    matmul = 4 * 2 * MATMUL_SIZE**3
    side1, side2 = IMAGE - 2, IMAGE - 4
    conv1 = 2 * CONV_BATCH * CONV_CHANNELS * side1 * side1 * 9
    conv2 = 2 * CONV_BATCH * CONV_CHANNELS * side2 * side2 * 9 * CONV_CHANNELS
    return matmul + conv1 + conv2


def merge(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """One calibration from two taken around a run (before the first cell, after the last): all
    samples and their median, so a load that came or went during the run is reflected; the ``drift``,
    the median after over the median before: how much the machine's speed changed while the cells
    ran; and the ``spread`` of each half, the larger one (:func:`halves_spread`)."""
    if before.get("version") != after.get("version"):
        raise ValueError("calibrations of different workload versions cannot be merged")
    merged = describe({**before, "samples": list(before["samples"]) + list(after["samples"])})
    return {**merged, "spread": halves_spread(before["samples"], after["samples"]),
            "drift": drift(before["samples"], after["samples"])}


def halves_spread(before: Sequence[float], after: Sequence[float]) -> float | None:
    """The larger of the two calibrations' own spreads: how steady the machine was while each was
    timed. Their union's spread would count the change from one to the other, which the drift judges
    on its own: a machine that warms up during the cells gives two steady halves whose union looks
    unsteady, and would have every quiet run called unsteady (figures in docs/regression-gate.md)."""
    spreads = [value for value in (spread(before), spread(after)) if value is not None]
    return max(spreads) if spreads else None


def drift(before: Sequence[float], after: Sequence[float]) -> float | None:
    """Median of ``after`` over median of ``before`` (None without both)."""
    if not before or not after or statistics.median(before) <= 0:
        return None
    return statistics.median(after) / statistics.median(before)


def around_cell(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """One cell's calibration from those taken just before it (the last :data:`CELL_SAMPLES` samples)
    and just after it: the machine's speed while that cell ran. A load that comes and goes during a
    run changes the calibration around the cells it slows, where the run's calibration (before the
    first cell and after the last) averages it away."""
    if before.get("version") != after.get("version"):
        raise ValueError("calibrations of different workload versions cannot be merged")
    samples = list(before["samples"])[-CELL_SAMPLES:] + list(after["samples"])
    return {key: value for key, value in describe({"version": after["version"], "samples": samples}).items()
            if key in ("version", "samples", "seconds", "spread")}


def for_cells(task: Task, cells: Sequence[Cell], devices_here: bool,
              always: bool = False) -> RunCalibration | None:
    """How a run of ``cells`` is calibrated, or None when it is not.

    The workload is in torch, so a TensorFlow-only run skips it rather than import torch, unless
    ``always`` (the nightly check, whose every run needs a calibration to be compared). A task without
    a framework (PCA) times BLAS work on the CPU, which the workload stands for as well. The
    calibration runs in the runner's process: on a GPU only where the cells' GPU is this machine's
    (``devices_here``), else on the CPU. A short calibration after each cell brackets it with the one
    before only where the cells run one by one in this process, and
    not in a run calibrated only because of ``always``: its cells run as they would uncalibrated,
    with no torch work between them.
    """
    automatic = not task.uses_backends or any(cell.backend == "torch" for cell in cells)
    if not (automatic or always):
        return None
    device = next((cell.device for cell in cells if cell.device != "auto" and devices_here), "cpu")
    return RunCalibration(device, per_cell=automatic and devices_here)


@dataclass
class RunCalibration:
    """The calibrations one run takes, in order: :meth:`before_cells`, :meth:`after_cell` after each
    cell (None unless ``per_cell``), :meth:`after_cells` once the cells are done."""

    #: Where the workload runs: ``cpu`` or the cells' GPU.
    device: str
    #: Whether each cell gets its own calibration (:func:`around_cell`).
    per_cell: bool
    #: The calibration before the first cell, merged with the one after the last.
    before: dict[str, Any] | None = field(default=None, repr=False)
    #: The calibration taken last, the start of the next cell's.
    latest: dict[str, Any] | None = field(default=None, repr=False)

    def before_cells(self) -> dict[str, Any]:
        """The calibration before the first cell: the run's calibration until :meth:`after_cells`."""
        self.before = self.latest = calibrate(self.device)
        return self.before

    def after_cell(self) -> dict[str, Any] | None:
        """The calibration around the cell that just finished, from a short one taken now and the one
        before it; None for a run without per-cell calibrations."""
        if not self.per_cell:
            return None
        after = calibrate(self.device, samples=CELL_SAMPLES)
        around, self.latest = around_cell(self.latest, after), after
        return around

    def after_cells(self) -> dict[str, Any]:
        """The run's calibration: the one before the cells merged with one taken now (:func:`merge`)."""
        return merge(self.before, calibrate(self.device))
