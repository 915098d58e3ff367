"""Tests for the regression gate (harness.thresholds, harness.compare.stats, .checks, .comparison):
threshold parsing, noise tests, and verdicts on synthetic runs.

Synthetic runs are drawn from fixed random generators: accuracies over seeds with a spread of about
0.15 points, timings with about 5 % multiplicative noise over repeats and 3 % more from run to run
(one factor per run, as a process's memory layout or thread placement gives), so the noise tests
have something real to judge and the expected outcomes do not depend on this machine.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.compare.checks import (
    EqualCheck,
    Outcome,
    StatusCheck,
    ThresholdCheck,
    parse_check,
    parse_checks,
)
from harness.compare.comparison import MAX_TIME_SCALE, compare, confirm, time_scale
from harness.compare.results import CellSummary, RunResults, Side, pool
from harness.compare.stats import SampleStats, mean_test, rank_test, run_test
from harness.errors import UserError
from harness.suite.regression_settings import RegressionSettings
from harness.thresholds import direction

MODELS = {"MLP": 1_796_010, "CNN": 185_066}


def synthetic_run(run_id: str, *, seed: int, accuracy_shift: float = 0.0, slowdown: float = 1.0, seeds: int = 3,
                  repeats: int = 4, calibration: float = 0.1, cpu: str = "EPYC", failing: tuple[str, ...] = (),
                  params_delta: int = 0, fail: str | None = None, jitter: float | None = None,
                  run_noise: float = 0.03) -> RunResults:
    """A run of two models: per seed a test accuracy, per repeat a training time."""
    rng = np.random.default_rng(seed)
    this_run = rng.lognormal(0.0, run_noise)
    cells = []
    for model, params in MODELS.items():
        base_seconds = 10.0 * this_run if model == "MLP" else 30.0 * this_run
        for cell_seed in range(seeds):
            ok = model not in failing
            times = (base_seconds * slowdown * rng.lognormal(0.0, 0.05, repeats)).tolist()
            record = {
                "model": model,
                "params": params + params_delta,
                "test_accuracy": 97.5 + accuracy_shift + rng.normal(0.0, 0.15),
                "train_seconds": float(np.median(times)),
            }
            cells.append(CellSummary(model, "torch", "cpu", cell_seed, {}, "ok" if ok else "failed",
                                     "" if ok else "RuntimeError: loss became nan in epoch 1",
                                     record if ok else {"model": model}, {"train_seconds": times} if ok else {}))
    environment = {"cpu": cpu, "cpu_cores": 2, "calibration": {"version": 1, "seconds": calibration}}
    if jitter is not None:  # calibration samples spread by ``jitter`` (a fraction) around the median
        environment["calibration"]["samples"] = [calibration * (1 - jitter / 2), calibration, calibration * (1 + jitter / 2)]
    regression = {"fail": fail} if fail else {}
    return RunResults("demo", run_id, "nightly", "abc123", "2026-01-01T00:00:00", environment, regression, cells)


def pooled(run_id: str = "a", *, seed: int = 1, runs: int = 4, **options) -> RunResults:
    """A baseline pooled from ``runs`` synthetic runs of the same code, the newest named ``run_id``."""
    return pool([synthetic_run(f"{run_id}{index}" if index < runs - 1 else run_id, seed=seed + 100 * index, **options)
                 for index in range(runs)])


def outcomes(comparison, metric: str) -> dict[str, Outcome]:
    return {v.row: v.outcome for v in comparison.verdicts if v.metric == metric}


# --- parsing ---------------------------------------------------------------------------------------

def test_parse_absolute_and_relative_thresholds():
    drop = parse_check("test_accuracy:-0.5")
    assert (drop.metric, drop.limit, drop.worse, drop.relative) == ("test_accuracy", 0.5, -1, False)
    growth = parse_check("train_seconds:+10%")
    assert (growth.metric, growth.limit, growth.worse, growth.relative) == ("train_seconds", 10.0, 1, True)
    assert str(growth) == "train_seconds:+10%" and str(drop) == "test_accuracy:-0.5"


def test_parse_rejects_the_wrong_direction_and_bad_syntax():
    with pytest.raises(UserError, match=r"guards the wrong side.*write test_accuracy:-0.5"):
        parse_check("test_accuracy:+0.5")
    with pytest.raises(UserError, match=r"write train_seconds:\+10%"):
        parse_check("train_seconds:-10%")
    with pytest.raises(UserError, match="bad threshold 'train_seconds:10%'"):
        parse_check("train_seconds:10%")


def test_command_line_thresholds_replace_only_the_metrics_they_name():
    checks = parse_checks("train_seconds:+25%", parse_checks("test_accuracy:-1,train_seconds:+10%"))
    assert [str(c) for c in checks] == ["test_accuracy:-1", "train_seconds:+25%"]


def test_settings_validate_their_thresholds():
    assert (RegressionSettings().fail, RegressionSettings().normalize) == ("test_accuracy:-1.0,train_seconds:+10%", "auto")
    with pytest.raises(ValueError, match="guards the wrong side"):
        RegressionSettings(fail="train_seconds:-5%")


def test_direction_of_known_metrics():
    assert [direction(m) for m in ("test_accuracy", "train_seconds", "final_val_loss", "params")] == [1, -1, -1, 0]


# --- statistics ------------------------------------------------------------------------------------

def test_epochs_stand_in_for_repeats_of_the_training_time():
    history = [{"epoch": 1, "seconds": 2.0}, {"epoch": 2, "seconds": 3.0}]
    cell = CellSummary.from_parts({"model": "M", "backend": "torch", "device": "cpu", "seed": 0}, "ok", "",
                                  {"train_seconds": 5.0}, {"history": history})
    assert cell.values("train_seconds") == [4.0, 6.0] and cell.values("seconds_per_epoch") == [2.0, 3.0]
    repeated = CellSummary.from_parts({"model": "M", "backend": "torch", "device": "cpu", "seed": 0}, "ok", "",
                                      {"train_seconds": 5.0}, {"history": history, "timings": {"train_seconds": [5.1, 4.9]}})
    assert repeated.values("train_seconds") == [5.1, 4.9]  # real repeats win


def test_sample_stats_fields():
    stats = SampleStats.of([4.0, 1.0, 3.0, 2.0, 5.0])
    assert stats.as_dict() == {"rounds": 5, "min": 1.0, "max": 5.0, "mean": 3.0, "stddev": pytest.approx(1.5811, 1e-4),
                               "median": 3.0, "q1": 2.0, "q3": 4.0, "iqr": 2.0}
    assert SampleStats.of([7.0]).stddev == 0.0


def test_rank_test_sees_a_clear_shift_and_not_a_reshuffle():
    before = (1.00, 1.02, 0.98, 1.01, 0.99)
    assert rank_test(tuple(v * 1.3 for v in before), before, worse=1) == pytest.approx(1 / 252, rel=1e-6)
    assert rank_test((1.01, 0.99, 1.00, 0.98, 1.02), before, worse=1) > 0.3
    assert rank_test((1.5,), before, worse=1) is None  # one sample: no noise estimate


def test_mean_test_treats_identical_deterministic_seeds_as_certain():
    assert mean_test((95.0, 96.0), (97.0, 98.0), worse=-1) < 0.1
    assert mean_test((97.0, 97.0), (97.5, 97.5), worse=-1) == 0.0
    assert mean_test((97.5, 97.5), (97.5, 97.5), worse=-1) == 1.0


# --- single checks ---------------------------------------------------------------------------------

def _side(values: list[float], metric: str = "train_seconds", status: str = "ok", runs: bool = False) -> Side:
    """A row's cells, one per value: all of one run, or (``runs``) each of its own run."""
    cells = tuple(CellSummary("M", "torch", "cpu", i, {}, status, "boom" if status != "ok" else "", {metric: v}, {},
                              run=f"run{i}" if runs else "")
                  for i, v in enumerate(values))
    return Side(cells)


def test_threshold_check_fails_with_a_message_only_beyond_threshold_and_noise():
    check = ThresholdCheck("train_seconds", 10.0, 1, True)
    before = _side([10.0, 10.2, 9.8, 10.1, 9.9], runs=True)
    assert check.fails(_side([13.0, 13.3, 12.7, 13.1, 12.9], runs=True), before) == (
        ": train_seconds 10 -> 13 (+30.00 %, limit train_seconds:+10%); p=3.39e-09 < 0.05 over 5 baseline run(s) vs 5")
    assert check.fails(_side([10.3, 10.1, 10.0, 10.4, 10.2], runs=True), before) is None
    # Beyond the threshold, but the runs overlap: within noise, not a regression.
    noisy = check.judge("M", _side([8.0, 14.0, 9.0, 13.5, 11.5], runs=True), before, 0.05)
    assert noisy.outcome is Outcome.NOISE and noisy.p_value > 0.05
    # The same values as the samples of one run a side: clear within the runs, unconfirmed between them.
    one_run = check.judge("M", _side([13.0, 13.3, 12.7, 13.1, 12.9]), _side([10.0, 10.2, 9.8, 10.1, 9.9]), 0.05)
    assert one_run.outcome is Outcome.UNCONFIRMED and one_run.p_value == pytest.approx(0.00397, rel=0.01)


def test_equal_and_status_checks():
    assert EqualCheck().fails(_side([100.0], "params"), _side([101.0], "params")) == ": params changed: 101 -> 100"
    assert EqualCheck().fails(_side([100.0], "params"), _side([100.0], "params")) is None
    assert StatusCheck().fails(_side([1.0], status="failed"), _side([1.0])).startswith(": passed in the baseline, fails")
    assert StatusCheck().judge("M", _side([1.0]), _side([1.0], status="failed"), 0.05).outcome is Outcome.IMPROVED


# --- whole synthetic runs --------------------------------------------------------------------------

def test_two_runs_differing_only_by_noise_are_not_flagged():
    comparison = compare(synthetic_run("a", seed=1), synthetic_run("b", seed=2))
    assert comparison.regressions == []
    assert set(outcomes(comparison, "train_seconds").values()) <= {Outcome.UNCHANGED, Outcome.NOISE}
    assert set(outcomes(comparison, "test_accuracy").values()) == {Outcome.UNCHANGED}
    assert [v.samples for v in comparison.verdicts if v.metric == "train_seconds"] == [(12, 12), (12, 12)]


def test_an_injected_two_point_accuracy_drop_is_flagged():
    comparison = compare(synthetic_run("a", seed=1), synthetic_run("b", seed=2, accuracy_shift=-2.0))
    flagged = {v.row: v for v in comparison.regressions}
    assert set(flagged) == {"MLP · torch/cpu", "CNN · torch/cpu"}
    verdict = flagged["MLP · torch/cpu"]
    assert verdict.metric == "test_accuracy" and verdict.change_unit == "pp"
    assert -2.5 < verdict.change < -1.5 and verdict.p_value < 0.01


def test_an_injected_thirty_percent_slowdown_is_flagged_against_a_baseline_of_several_runs():
    comparison = compare(pooled(), synthetic_run("b", seed=2, slowdown=1.3))
    assert {(v.row, v.metric) for v in comparison.regressions} == {
        ("MLP · torch/cpu", "train_seconds"), ("CNN · torch/cpu", "train_seconds")}
    for verdict in comparison.regressions:
        assert 20 < verdict.change < 40 and verdict.change_unit == "%" and verdict.p_value < 0.01
        assert "over 4 baseline run(s) vs 1" in verdict.message and verdict.samples == (48, 12)
    assert "baseline pooled from 4 runs: timings are judged against how much they varied from run to run" in (
        comparison.notes)


def test_one_run_a_side_leaves_a_timing_change_unconfirmed_however_steady_its_epochs():
    # Each run's 12 timings agree within 5 %, so a test over them sees a certain +30 %; but runs of the
    # same code differed by up to 46 % on the development machine: one run a side cannot confirm it.
    comparison = compare(synthetic_run("a", seed=1), synthetic_run("b", seed=2, slowdown=1.3))
    assert comparison.regressions == []
    timing = [v for v in comparison.verdicts if v.metric == "train_seconds"]
    assert {v.outcome for v in timing} == {Outcome.UNCONFIRMED} and all(v.p_value < 0.001 for v in timing)
    assert all("unconfirmed: one run a side" in v.message for v in timing)
    assert {(v.row, v.metric) for v in comparison.suspects} == {
        ("MLP · torch/cpu", "train_seconds"), ("CNN · torch/cpu", "train_seconds")}
    # Timings that overlap within the runs are noise, as before.
    assert compare(synthetic_run("a", seed=1), synthetic_run("b", seed=2, slowdown=1.03)).suspects == []


def test_a_change_within_the_baselines_run_to_run_noise_is_not_a_regression():
    # Baseline runs that differ from each other by about 20 %: a run 25 % slower than their middle
    # is within that spread, though far outside its own epochs' noise.
    noisy = pooled(run_noise=0.2)
    verdicts = [v for v in compare(noisy, synthetic_run("b", seed=2, slowdown=1.25, run_noise=0.0)).verdicts
                if v.metric == "train_seconds"]
    assert {v.outcome for v in verdicts} == {Outcome.NOISE}
    assert all("within the run-to-run noise" in v.message for v in verdicts)
    # Against steady runs, the same slowdown stands out.
    steady = compare(pooled(run_noise=0.02), synthetic_run("b", seed=2, slowdown=1.25, run_noise=0.0))
    assert {v.metric for v in steady.regressions} == {"train_seconds"}


def test_run_test_compares_run_medians_on_a_log_scale():
    baseline = (10.0, 10.5, 9.8, 10.2)
    assert run_test((13.0,), baseline, 1) == pytest.approx(0.00235, rel=0.01)
    assert run_test((13.0,), baseline, -1) == pytest.approx(1 - 0.00235, rel=0.01)
    # Scale-free: the same runs in milliseconds give the same p-value.
    assert run_test((13000.0,), tuple(v * 1000 for v in baseline), 1) == pytest.approx(run_test((13.0,), baseline, 1))
    # One run a side (no spread to measure): no p-value; identical runs: certain.
    assert run_test((13.0,), (10.0,), 1) is None and run_test((), baseline, 1) is None
    assert run_test((12.0,), (10.0, 10.0), 1) == 0.0 and run_test((9.0,), (10.0, 10.0), 1) == 1.0


def test_side_run_medians_keep_one_value_per_run():
    cells = (CellSummary("M", "torch", "cpu", 0, {}, "ok", "", {}, {"train_seconds": [1.0, 2.0, 9.0]}, run="r1"),
             CellSummary("M", "torch", "cpu", 1, {}, "ok", "", {}, {"train_seconds": [3.0]}, run="r1"),
             CellSummary("M", "torch", "cpu", 0, {}, "ok", "", {}, {"train_seconds": [4.0, 6.0]}, run="r2"),
             CellSummary("M", "torch", "cpu", 0, {}, "failed", "boom", {}, {"train_seconds": [99.0]}, run="r3"))
    assert Side(cells).run_medians("train_seconds") == (2.5, 5.0)
    assert Side(cells, time_scale=2.0).run_medians("train_seconds") == (5.0, 10.0)


def test_pool_marks_each_cell_with_its_run_and_stands_one_calibration_for_all():
    runs = [synthetic_run(name, seed=seed, calibration=seconds, jitter=jitter)
            for name, seed, seconds, jitter in (("a1", 1, 0.10, 0.1), ("a2", 2, 0.12, 0.2), ("a3", 3, 0.11, 0.3))]
    baseline = pool(runs)
    assert baseline.run_id == "a3" and baseline.runs == ("a1", "a2", "a3") and baseline.described == "a3 (+2 more runs)"
    assert [cell.run for cell in baseline.cells] == [name for name in ("a1", "a2", "a3") for _ in range(6)]
    assert baseline.calibration_seconds == pytest.approx(0.11)
    assert baseline.calibration_spread == pytest.approx(10.0)  # the runs' typical spread, not their differences
    assert baseline.calibration["runs"] == 3 and baseline.calibration_drift is None
    # Pooling a pooled baseline with one more run keeps every run once.
    assert pool([baseline, synthetic_run("a4", seed=4)]).runs == ("a1", "a2", "a3", "a4")


def test_a_faster_run_is_an_improvement_not_a_regression():
    comparison = compare(synthetic_run("a", seed=1), synthetic_run("b", seed=2, slowdown=0.7))
    assert comparison.regressions == []
    assert set(outcomes(comparison, "train_seconds").values()) == {Outcome.IMPROVED}


def test_a_slowdown_on_a_single_timing_is_unconfirmed_and_fails_nothing():
    # One sample per side: no noise estimate. Two runs of the same code on a loaded machine differed
    # by +410 % this way, so a single timing may not fail the gate.
    comparison = compare(synthetic_run("a", seed=1, seeds=1, repeats=1, run_noise=0.0),
                         synthetic_run("b", seed=2, seeds=1, repeats=1, slowdown=1.3, run_noise=0.0))
    assert comparison.regressions == []
    timing = [v for v in comparison.verdicts if v.metric == "train_seconds"]
    assert {v.outcome for v in timing} == {Outcome.UNCONFIRMED} and all(15 < v.change < 35 for v in timing)
    assert all("unconfirmed: 1 sample on a side" in v.message for v in timing)
    assert {(v.row, v.metric) for v in comparison.suspects} == {
        ("MLP · torch/cpu", "train_seconds"), ("CNN · torch/cpu", "train_seconds")}


def test_a_single_accuracy_still_fails_on_the_threshold_alone():
    # Accuracy with a fixed seed repeats exactly between runs, so one value per side is enough.
    comparison = compare(synthetic_run("a", seed=1, seeds=1, repeats=1),
                         synthetic_run("b", seed=2, seeds=1, repeats=1, accuracy_shift=-2.0))
    assert {v.metric for v in comparison.regressions} == {"test_accuracy"}
    assert all("no noise estimate: 1 sample" in v.message for v in comparison.regressions)


def test_a_second_run_confirms_a_single_timing_change_and_clears_a_one_off():
    baseline = synthetic_run("a", seed=1, seeds=1, repeats=1)
    first = compare(baseline, synthetic_run("b", seed=2, seeds=1, repeats=1, slowdown=1.3))
    confirmed = confirm(first, compare(baseline, synthetic_run("c", seed=3, seeds=1, repeats=1, slowdown=1.3)))
    assert {(v.row, v.metric) for v in confirmed.regressions} == {
        ("MLP · torch/cpu", "train_seconds"), ("CNN · torch/cpu", "train_seconds")}
    assert all("confirmed by a second run (+" in v.message for v in confirmed.regressions)
    # The second run at the baseline's speed: the first run's change was a one-off.
    cleared = confirm(first, compare(baseline, synthetic_run("c", seed=3, seeds=1, repeats=1)))
    assert cleared.regressions == [] and cleared.suspects == []
    # A regression of the second run alone is not confirmed either.
    tested = synthetic_run("d", seed=4, slowdown=1.3)
    alone = confirm(compare(synthetic_run("a", seed=1), synthetic_run("b", seed=2)),
                    compare(synthetic_run("a", seed=1), tested))
    assert alone.regressions == [] and {v.outcome for v in alone.suspects} == {Outcome.UNCONFIRMED}


def test_timing_regressions_need_a_second_run_when_the_calibration_was_unsteady():
    # The fixed workload's samples spread by 30 % (interquartile range): the scaling cannot be trusted.
    unsteady = compare(synthetic_run("a", seed=1, jitter=0.04), synthetic_run("b", seed=2, slowdown=1.3, jitter=0.6))
    assert unsteady.regressions == []
    assert {v.outcome for v in unsteady.verdicts if v.metric == "train_seconds"} == {Outcome.UNCONFIRMED}
    assert any(note.startswith("warning: the calibration was unsteady (this run 30 % spread") for note in unsteady.notes)
    # A steady calibration (2 %): the same slowdown is a regression (against runs that show the noise).
    steady = compare(pooled(jitter=0.04), synthetic_run("b", seed=2, slowdown=1.3, jitter=0.04))
    assert {v.metric for v in steady.regressions} == {"train_seconds"} and steady.warnings == []


def test_a_scale_factor_out_of_range_is_a_warning_not_a_multiplier():
    # 5 ms here against 0.612 s in the baseline (x112): timings are not comparable, whatever they say.
    far = compare(synthetic_run("a", seed=1, calibration=0.612), synthetic_run("b", seed=2, slowdown=1.3, calibration=0.005))
    assert far.time_scale == 1.0 and far.regressions == []
    assert {v.outcome for v in far.verdicts if v.metric == "train_seconds"} == {Outcome.NOT_COMPARABLE}
    (warning,) = far.warnings
    assert "timings not comparable with this baseline" in warning and "x122.4" in warning
    assert "the machine's load changed that much between the runs" in warning  # one kind of machine
    other = compare(synthetic_run("a", seed=1, calibration=0.612), synthetic_run("b", seed=2, calibration=0.005, cpu="Xeon"))
    assert "measure a baseline on this kind of machine" in other.warnings[0]
    # Accuracy is still judged: the warning is about timings only.
    dropped = compare(synthetic_run("a", seed=1, calibration=0.612),
                      synthetic_run("b", seed=2, accuracy_shift=-2.0, calibration=0.005))
    assert {v.metric for v in dropped.regressions} == {"test_accuracy"}
    # Just inside the range the factor is used (normalize=always scales on one machine too; auto, the
    # default, judges raw seconds there and the calibration only clears a regression it explains).
    near = compare(synthetic_run("a", seed=1, calibration=0.1 * MAX_TIME_SCALE * 0.99), synthetic_run("b", seed=2),
                   normalize="always")
    assert near.time_scale == pytest.approx(MAX_TIME_SCALE * 0.99) and near.warnings == []
    assert compare(synthetic_run("a", seed=1, calibration=0.1 * MAX_TIME_SCALE * 0.99),
                   synthetic_run("b", seed=2)).time_scale == 1.0


def test_on_one_machine_the_calibrations_noise_alone_raises_no_alarm():
    # The same code, timed alike, but the calibration around the current run came out 15 % slow (its
    # own noise): scaling by it alone (always) would call the code 15 % slower; auto (the default)
    # judges the raw seconds, and only a regression there is then checked against the calibration.
    baseline, current = pooled(calibration=0.1), synthetic_run("b", seed=2, calibration=0.1 / 1.15)
    assert {v.metric for v in compare(baseline, current, normalize="always").regressions} == {"train_seconds"}
    assert compare(baseline, current).regressions == []
    # A real 30 % slowdown shows in raw seconds and survives the scaling: still caught.
    slowed = synthetic_run("b", seed=2, slowdown=1.3, calibration=0.1 / 1.15)
    assert {v.metric for v in compare(baseline, slowed).regressions} == {"train_seconds"}


def test_failing_cells_changed_params_and_missing_rows_are_regressions():
    baseline = synthetic_run("a", seed=1)
    failing = compare(baseline, synthetic_run("b", seed=2, failing=("CNN",)))
    assert [(v.row, v.metric) for v in failing.regressions] == [("CNN · torch/cpu", "status")]
    assert "loss became nan" in failing.regressions[0].message
    changed = compare(baseline, synthetic_run("b", seed=2, params_delta=10))
    assert {v.metric for v in changed.regressions} == {"params"}
    subset = synthetic_run("b", seed=2)
    subset = RunResults(**{**subset.__dict__, "cells": [c for c in subset.cells if c.model == "MLP"]})
    missing = compare(baseline, subset)
    assert [(v.row, v.current) for v in missing.regressions] == [("CNN · torch/cpu", "missing")]


def test_timings_from_another_machine_are_scaled_by_the_calibration():
    # The current machine is twice as slow: both calibration and training take twice as long.
    slow_machine = synthetic_run("b", seed=2, slowdown=2.0, calibration=0.2, cpu="Xeon")
    comparison = compare(synthetic_run("a", seed=1), slow_machine)
    assert comparison.time_scale == pytest.approx(0.5)
    assert comparison.regressions == []
    assert any("scaled by 0.500" in note for note in comparison.notes)
    assert any(c.key == "cpu" for c in comparison.environment_changes)
    # Unscaled, the same runs are a 100 % slowdown.
    assert len(compare(pooled(), slow_machine, normalize="never").regressions) == 2


def test_a_slowdown_the_calibration_shows_too_is_blamed_on_the_machine():
    # Same machine, both the training and the calibration workload 30 % slower: a busier machine.
    busy = compare(pooled(calibration=0.1), synthetic_run("b", seed=2, slowdown=1.3, calibration=0.13),
                   normalize="auto")
    assert busy.regressions == [] and busy.time_scale == 1.0
    timing = [v for v in busy.verdicts if v.metric == "train_seconds"]
    assert {v.outcome for v in timing} == {Outcome.NOISE}
    assert all("calibration workload ran +30 % slower too" in v.message for v in timing)
    # The calibration unchanged: the code is slower, and it is reported.
    slower_code = compare(pooled(calibration=0.1), synthetic_run("b", seed=2, slowdown=1.3, calibration=0.1),
                          normalize="auto")
    # Scaled by default: the busier machine's run is judged as if it had been as fast as the baseline's.
    assert compare(synthetic_run("a", seed=1, calibration=0.1),
                   synthetic_run("b", seed=2, slowdown=1.3, calibration=0.13)).regressions == []
    assert {v.metric for v in slower_code.regressions} == {"train_seconds"}


def test_time_scale_auto_leaves_runs_of_one_machine_alone():
    same = synthetic_run("b", seed=2, calibration=0.25)
    assert time_scale(synthetic_run("a", seed=1), same, "auto").factor == 1.0
    assert time_scale(synthetic_run("a", seed=1), same, "auto").note is None
    assert time_scale(synthetic_run("a", seed=1), same, "always").factor == pytest.approx(0.4)


@pytest.mark.parametrize("normalize", ["auto", "always", "never"])
def test_cpu_runs_on_different_numbers_of_cores_are_not_compared_for_time(normalize):
    # One usable core (taskset, a container) against a two-core baseline: a batch-50 MLP step took as
    # long on one core as on two, the calibration 1.45 times as long, so scaling would hide a slowdown.
    two, one = pooled(), synthetic_run("b", seed=2, slowdown=1.3, calibration=0.145)
    for cell_run in (two, one):
        cell_run.environment["usable_cores"] = 2 if cell_run is two else 1
    comparison = compare(two, one, normalize=normalize)
    assert {v.outcome for v in comparison.verdicts if v.metric == "train_seconds"} == {Outcome.NOT_COMPARABLE}
    assert "it could use 2 core(s), this run 1" in comparison.warnings[0] and comparison.regressions == []
    # Accuracy is still judged; runs recording only cpu_cores are held to the same rule.
    dropped = synthetic_run("c", seed=3, accuracy_shift=-2.0, cpu="EPYC")
    dropped.environment["cpu_cores"] = 1
    assert {v.metric for v in compare(pooled(), dropped, normalize=normalize).regressions} == {"test_accuracy"}


@pytest.mark.parametrize("normalize", ["auto", "always", "never"])
def test_a_bf16_run_is_not_compared_for_time_with_an_fp32_baseline(normalize):
    # A baseline from before the setting existed trained in fp32; the bf16 run is faster by its arithmetic.
    baseline, bf16 = pooled(), synthetic_run("b", seed=2, slowdown=0.5, accuracy_shift=-2.0)
    bf16.environment["precision"] = "bf16"
    comparison = compare(baseline, bf16, normalize=normalize)
    timings = [v for v in comparison.verdicts if v.metric == "train_seconds"]
    assert {v.outcome for v in timings} == {Outcome.NOT_COMPARABLE}
    assert all(v.message.endswith("not compared: trained in bf16, the baseline in fp32") for v in timings)
    assert "it trained in fp32, this run in bf16; measure a baseline in bf16" in comparison.warnings[0]
    assert {v.metric for v in comparison.regressions} == {"test_accuracy"}  # accuracy is still judged
    bf16_baseline = synthetic_run("c", seed=3)
    bf16_baseline.environment["precision"] = "bf16"
    assert compare(bf16_baseline, bf16, normalize=normalize).warnings == []


def test_suite_thresholds_come_from_the_current_run_and_the_command_line_wins():
    baseline = pooled()
    lenient = synthetic_run("b", seed=2, slowdown=1.3, fail="train_seconds:+50%")
    assert compare(baseline, lenient).regressions == []
    assert len(compare(baseline, lenient, fail="train_seconds:+20%").regressions) == 2


def test_a_run_whose_machine_changed_speed_while_it_ran_is_not_comparable():
    # The calibration after the cells took 4.5 times as long as the one before: the load rose during
    # the run (measured so on the shared machine), and its timings are not judged, either side.
    drifted = synthetic_run("b", seed=2, slowdown=1.3)
    drifted.environment["calibration"]["samples"] = [0.04] * 3 + [0.18] * 3
    comparison = compare(synthetic_run("a", seed=1), drifted)
    assert comparison.regressions == []
    assert {v.outcome for v in comparison.verdicts if v.metric == "train_seconds"} == {Outcome.NOT_COMPARABLE}
    assert "speed changed while the cells ran (this run x4.5" in comparison.warnings[0]
    assert compare(drifted, synthetic_run("a", seed=1)).warnings[0].count("baseline x4.5") == 1
    # A stored drift wins over the halves of the samples: x1.2 is comparable, and each half on its own
    # is steady (the change between them is the drift's to judge), so the slowdown is a regression.
    drifted.environment["calibration"]["drift"] = 1.2
    steadier = compare(pooled(), drifted)
    assert {v.outcome for v in steadier.verdicts if v.metric == "train_seconds"} == {Outcome.REGRESSED}
    assert steadier.warnings == []
    # A half that jitters by 30 %: unsteady, the slowdown waits for a second run.
    drifted.environment["calibration"]["samples"] = [0.028, 0.04, 0.052, 0.046, 0.048, 0.05]
    unsteady = compare(pooled(), drifted)
    assert {v.outcome for v in unsteady.verdicts if v.metric == "train_seconds"} == {Outcome.UNCONFIRMED}
    assert "the calibration was unsteady (this run 30 % spread" in unsteady.warnings[0]


def with_cell_calibrations(run: RunResults, seconds: dict[str, float]) -> RunResults:
    """``run`` with each cell's own calibration (model -> seconds), as the runner stores around each cell."""
    from dataclasses import replace

    return replace(run, cells=[replace(cell, calibration=seconds[cell.model]) for cell in run.cells])


@pytest.mark.parametrize("normalize", ["always", "auto"])
def test_a_load_during_some_cells_is_matched_by_their_own_calibration(normalize):
    # The run's calibrations (before the first cell, after the last) saw a quiet machine; a load came
    # during the MLP cells only: they and the calibration around them took 50 % longer. The CNN code
    # really got 30 % slower, with the machine as quiet as in the baseline.
    baseline = with_cell_calibrations(pooled(), {"MLP": 0.1, "CNN": 0.1})
    current = synthetic_run("b", seed=2)
    current = replace_cells(current, lambda cell: {"MLP": 1.5, "CNN": 1.3}[cell.model])
    current = with_cell_calibrations(current, {"MLP": 0.15, "CNN": 0.1})
    comparison = compare(baseline, current, normalize=normalize)
    timing = outcomes(comparison, "train_seconds")
    assert timing["MLP · torch/cpu"] is not Outcome.REGRESSED
    assert timing["CNN · torch/cpu"] is Outcome.REGRESSED
    assert "2 row(s) judged by the calibrations taken around their own cells" in comparison.notes
    # Without the cells' calibrations the run's own (equal on both sides) decides: the load is blamed on the code.
    plain = compare(pooled(), replace_cells(synthetic_run("b", seed=2),
                                                             lambda cell: {"MLP": 1.5, "CNN": 1.3}[cell.model]),
                    normalize=normalize)
    assert outcomes(plain, "train_seconds")["MLP · torch/cpu"] is Outcome.REGRESSED


def test_cell_calibrations_too_far_apart_make_the_row_not_comparable():
    baseline = with_cell_calibrations(pooled(), {"MLP": 0.1, "CNN": 0.1})
    current = with_cell_calibrations(replace_cells(synthetic_run("b", seed=2), lambda cell: 1.3),
                                     {"MLP": 0.1 * MAX_TIME_SCALE * 1.5, "CNN": 0.1})
    timing = outcomes(compare(baseline, current), "train_seconds")
    assert timing == {"MLP · torch/cpu": Outcome.NOT_COMPARABLE, "CNN · torch/cpu": Outcome.REGRESSED}


def replace_cells(run: RunResults, slowdown) -> RunResults:
    """``run`` with each cell's timings multiplied by ``slowdown(cell)``."""
    from dataclasses import replace

    def slower(cell):
        factor = slowdown(cell)
        return replace(cell, record={**cell.record, "train_seconds": cell.record["train_seconds"] * factor},
                       samples={name: [value * factor for value in values] for name, values in cell.samples.items()})

    return replace(run, cells=[slower(cell) for cell in run.cells])
