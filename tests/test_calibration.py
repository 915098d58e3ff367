"""Tests for harness.calibration: the workload's size, its timing with a fake clock, its spread,
and merging."""

from __future__ import annotations

import itertools

import pytest

from harness import calibration

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


def test_calibrate_reports_the_median_of_its_timed_samples():
    result = calibration.calibrate(samples=3, clock=MockClock(0.25))
    assert result["samples"] == [0.25] * 3 and result["seconds"] == 0.25 and result["spread"] == 0.0
    assert result["passes_per_sample"] == 1
    assert result["gflops"] == pytest.approx(1_425_940_480 / 0.25 / 1e9)
    assert result["version"] == calibration.VERSION and result["device"] == "cpu" and result["threads"] >= 1


def test_a_fast_machine_times_enough_passes_per_sample():
    # A 5 ms pass (a fast machine) is timed 20 passes at a time to fill 0.1 s; samples stay per pass.
    result = calibration.calibrate(samples=3, min_sample_seconds=0.1, clock=MockClock(0.005))
    assert result["passes_per_sample"] == 20
    assert result["samples"] == [pytest.approx(0.005 / 20)] * 3  # the mock clock ticks once per sample


def test_calibrate_runs_on_the_training_thread_count(monkeypatch):
    import torch

    monkeypatch.setenv("HARNESS_THREADS", "1")
    before = torch.get_num_threads()
    assert calibration.calibrate(samples=3, clock=MockClock(0.25))["threads"] == 1
    assert torch.get_num_threads() == before  # the caller's setting is left as it was


def test_calibrate_on_this_machine_takes_real_time():
    result = calibration.calibrate(samples=3, min_sample_seconds=0.02)
    assert len(result["samples"]) == 3 and all(s > 0 for s in result["samples"])
    assert result["gflops"] > 0.1  # even a crowded 2-core machine does better than this
    assert result["spread"] is not None and result["spread"] >= 0


def test_spread_is_the_interquartile_range_over_the_median():
    assert calibration.spread([1.0, 1.0, 1.0, 1.0]) == 0.0
    assert calibration.spread([0.7, 1.0, 1.3]) == pytest.approx(30.0)
    assert calibration.spread([1.0, 1.0]) is None  # too few samples to say


def test_merge_keeps_all_samples_and_their_median():
    before = {"version": 1, "samples": [0.1, 0.1, 0.1], "seconds": 0.1}
    after = {"version": 1, "samples": [0.3, 0.3, 0.3], "seconds": 0.3}
    merged = calibration.merge(before, after)
    assert merged["samples"] == [0.1] * 3 + [0.3] * 3 and merged["seconds"] == pytest.approx(0.2)
    # Each half steady: the change between them is the drift (x3), not unsteadiness.
    assert merged["spread"] == 0.0 and merged["drift"] == pytest.approx(3.0)
    jittery = calibration.merge({**before, "samples": [0.07, 0.1, 0.13]}, after)
    assert jittery["spread"] == pytest.approx(30.0) == calibration.halves_spread([0.07, 0.1, 0.13], [0.3] * 3)
    with pytest.raises(ValueError, match="versions"):
        calibration.merge(before, {**after, "version": 2})



def test_a_cell_calibration_is_the_end_of_the_one_before_and_the_one_after():
    before = {"version": 1, "samples": [0.5] * 10 + [0.1] * calibration.CELL_SAMPLES, "seconds": 0.1}
    after = {"version": 1, "samples": [0.3] * calibration.CELL_SAMPLES, "seconds": 0.3}
    around = calibration.around_cell(before, after)
    assert around == {"version": 1, "samples": [0.1] * 5 + [0.3] * 5, "seconds": pytest.approx(0.2),
                      "spread": pytest.approx(100.0)}
    with pytest.raises(ValueError, match="versions"):
        calibration.around_cell(before, {**after, "version": 2})


def cells_on(*placements: str):
    """Cells of a classify suite, one per ``backend/device`` placement."""
    from harness.cells import Cell

    return [Cell("s", "classify", f"M{number}", *placement.split("/"), seed=0, config={})
            for number, placement in enumerate(placements)]


def test_a_run_with_torch_cells_is_calibrated_on_their_device_before_around_and_after_each_cell():
    from harness.tasks import task_for

    plan = calibration.for_cells(task_for("classify"), cells_on("tensorflow/auto", "torch/cuda"), devices_here=True)
    assert (plan.device, plan.per_cell) == ("cuda", True)
    # Cells on other machines (a Ray cluster): this machine's CPU, and no calibration around each cell.
    remote = calibration.for_cells(task_for("classify"), cells_on("torch/cuda"), devices_here=False)
    assert (remote.device, remote.per_cell) == ("cpu", False)


def test_a_tensorflow_only_run_is_calibrated_only_when_asked_always_and_then_as_a_whole():
    from harness.tasks import task_for

    task, cells = task_for("classify"), cells_on("tensorflow/cpu", "tensorflow/cpu")
    assert calibration.for_cells(task, cells, devices_here=True) is None
    always = calibration.for_cells(task, cells, devices_here=True, always=True)
    assert (always.device, always.per_cell) == ("cpu", False)


def test_a_task_without_a_framework_is_calibrated_for_its_blas_work():
    from harness.tasks import task_for

    plan = calibration.for_cells(task_for("pca"), cells_on("none/cpu"), devices_here=True)
    assert plan is not None and plan.device == "cpu"


def test_a_run_calibration_brackets_each_cell_and_merges_before_with_after(monkeypatch):
    taken: list[int] = []

    def fake(device="cpu", samples=calibration.SAMPLES, **_):
        # The machine gets slower with every calibration: 1 ms, 2 ms, ... per pass.
        taken.append(samples)
        return calibration.describe({"version": calibration.VERSION, "samples": [len(taken) / 1000] * samples})

    monkeypatch.setattr(calibration, "calibrate", fake)
    run = calibration.RunCalibration("cpu", per_cell=True)
    assert run.before_cells()["seconds"] == 0.001
    first, second = run.after_cell(), run.after_cell()
    assert first["samples"] == [0.001] * 5 + [0.002] * 5 and second["samples"] == [0.002] * 5 + [0.003] * 5
    merged = run.after_cells()
    assert merged["samples"] == [0.001] * calibration.SAMPLES + [0.004] * calibration.SAMPLES
    assert merged["drift"] == pytest.approx(4.0)
    assert taken == [calibration.SAMPLES, calibration.CELL_SAMPLES, calibration.CELL_SAMPLES, calibration.SAMPLES]
    assert calibration.RunCalibration("cpu", per_cell=False).after_cell() is None and len(taken) == 4
