"""Tests for harness.compare.calibration: the workload's size, its timing with a fake clock, and merging."""

from __future__ import annotations

import itertools

import pytest

from harness.compare import calibration

pytest.importorskip("torch")


class MockClock:
    """Each reading is ``step`` seconds after the previous one: every timed pass lasts exactly ``step``."""

    def __init__(self, step: float) -> None:
        self._ticks = itertools.count()
        self.step = step

    def __call__(self) -> float:
        return next(self._ticks) * self.step


def test_workload_flops_counts_four_matmuls_and_two_convolutions():
    matmuls = 4 * 2 * 512**3
    conv1 = 2 * 32 * 32 * 26 * 26 * 9
    conv2 = 2 * 32 * 32 * 24 * 24 * 9 * 32
    assert calibration.workload_flops() == matmuls + conv1 + conv2 == 1_425_940_480


def test_calibrate_reports_the_median_of_its_timed_passes():
    result = calibration.calibrate(repeats=3, clock=MockClock(0.25))
    assert result["samples"] == [0.25] * 3 and result["seconds"] == 0.25
    assert result["gflops"] == pytest.approx(1_425_940_480 / 0.25 / 1e9)
    assert result["version"] == calibration.VERSION and result["device"] == "cpu" and result["threads"] >= 1


def test_calibrate_on_this_machine_takes_real_time():
    result = calibration.calibrate(repeats=2)
    assert len(result["samples"]) == 2 and all(s > 0 for s in result["samples"])
    assert result["gflops"] > 0.1  # even a crowded 2-core machine does better than this


def test_merge_keeps_all_samples_and_their_median():
    before = {"version": 1, "samples": [0.1, 0.1, 0.1], "seconds": 0.1}
    after = {"version": 1, "samples": [0.3, 0.3, 0.3], "seconds": 0.3}
    merged = calibration.merge(before, after)
    assert merged["samples"] == [0.1] * 3 + [0.3] * 3 and merged["seconds"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="versions"):
        calibration.merge(before, {**after, "version": 2})
