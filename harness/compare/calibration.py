"""A fixed micro-benchmark timed alongside every run, so timings can be compared across machines.

The workload is the two kernels the report's models spend their time in: a square single-precision
matrix multiply (dense layers) and a 3x3 convolution over an MNIST-sized batch (conv layers). It is
timed the way the training loop is (same framework, same thread count, device synchronised before the
clock is read), warmed up first, and repeated; the median is the run's calibration. A comparison of
runs from two machines multiplies the current run's timings by ``baseline_seconds / current_seconds``
(:func:`harness.compare.regression.time_scale`), turning "seconds here" into "seconds on the baseline machine".

The workload must never change silently: a different workload is a different unit, so it carries a
``version``, and timings are only scaled between calibrations of the same version.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

VERSION = 1
MATMUL_SIZE = 512
CONV_BATCH, CONV_CHANNELS, IMAGE = 32, 32, 28


def calibrate(device: str = "cpu", repeats: int = 9, clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Time the calibration workload on ``device`` (``cpu`` or ``cuda``) and describe it.

    Returns the median seconds of ``repeats`` timed passes (after one untimed warm-up pass) with each
    sample, the achieved GFLOP/s and the thread count: the entry the runner stores as
    ``environment['calibration']``. Under a second on an idle 2-core CPU; the median of many short
    passes, because a shared machine's load comes and goes within a second.
    """
    import torch
    from torch.nn import functional as F

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

    workload()  # warm-up: first calls allocate and pick kernels
    synchronize()
    samples = []
    for _ in range(repeats):
        started = clock()
        workload()
        synchronize()
        samples.append(clock() - started)
    seconds = statistics.median(samples)
    return {
        "version": VERSION,
        "workload": f"4x matmul {MATMUL_SIZE}^2 fp32 + conv3x3 1->{CONV_CHANNELS}->{CONV_CHANNELS} "
                    f"on {CONV_BATCH}x{IMAGE}x{IMAGE}",
        "device": device,
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "samples": samples,
        "gflops": workload_flops() / seconds / 1e9 if seconds > 0 else None,
    }


def workload_flops() -> int:
    """Floating-point operations of one pass of the workload (multiply-add = 2)."""
    matmul = 4 * 2 * MATMUL_SIZE**3
    side1, side2 = IMAGE - 2, IMAGE - 4
    conv1 = 2 * CONV_BATCH * CONV_CHANNELS * side1 * side1 * 9
    conv2 = 2 * CONV_BATCH * CONV_CHANNELS * side2 * side2 * 9 * CONV_CHANNELS
    return matmul + conv1 + conv2


def merge(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """One calibration from two taken around a run (before the first cell, after the last): all
    samples, and their median, so a load that came or went during the run is reflected."""
    if before.get("version") != after.get("version"):
        raise ValueError("calibrations of different workload versions cannot be merged")
    samples = list(before["samples"]) + list(after["samples"])
    seconds = statistics.median(samples)
    return {**before, "samples": samples, "seconds": seconds,
            "gflops": workload_flops() / seconds / 1e9 if seconds > 0 else None}
