"""Tests for `harness nightly`'s judgement: a suspect is measured again, and only what the second run
shows too fails the night. Runs are synthetic (tests/test_regression.py's generator), measured by a
stand-in that hands them out in order, so no training runs here but in the one slow test of a real
measurement."""

from __future__ import annotations

import pytest

from harness.commands import nightly
from harness.suite.overrides import Override
from harness.compare.checks import Outcome
from tests.test_regression import pooled, synthetic_run


def measured(*runs):
    """A stand-in for measuring the suite: each call returns the next run; counts the calls."""
    queue = list(runs)

    def measure_once():
        measure_once.calls += 1
        return queue.pop(0)

    measure_once.calls = 0
    return measure_once


def single(run_id: str, seed: int, slowdown: float = 1.0):
    return synthetic_run(run_id, seed=seed, seeds=1, repeats=1, slowdown=slowdown)


def test_a_clean_night_measures_once(console):
    measure = measured(single("b", 2))
    (comparison,) = nightly.judge(single("a", 1), measure, None, True, console)
    assert measure.calls == 1 and comparison.suspects == []


def test_an_unconfirmed_timing_is_measured_again_and_confirmed_when_it_shows_twice(console):
    measure = measured(single("b", 2, slowdown=1.3), single("c", 3, slowdown=1.3))
    first, second = nightly.judge(single("a", 1), measure, None, True, console)
    assert measure.calls == 2
    assert {v.outcome for v in first.verdicts if v.metric == "train_seconds"} == {Outcome.UNCONFIRMED}
    assert {(v.row, v.metric) for v in second.regressions} == {
        ("MLP · torch/cpu", "train_seconds"), ("CNN · torch/cpu", "train_seconds")}
    assert "measuring once more" in console.file.getvalue()


@pytest.mark.parametrize("remeasure", [True, False])
def test_a_one_off_slow_run_fails_nothing(console, remeasure):
    measure = measured(single("b", 2, slowdown=1.3), single("c", 3))
    comparisons = nightly.judge(single("a", 1), measure, None, remeasure, console)
    assert comparisons[-1].regressions == [] and measure.calls == (2 if remeasure else 1)


def test_against_a_baseline_of_several_runs_one_run_is_judged_and_a_second_confirms_it(console):
    # Four baseline runs show how much the timings vary from run to run, so the first slow run is a
    # regression on its own; the night still measures it again before failing.
    measure = measured(synthetic_run("b", seed=2, slowdown=1.3), synthetic_run("c", seed=3, slowdown=1.3))
    first, second = nightly.judge(pooled(), measure, None, True, console)
    assert measure.calls == 2
    assert {v.metric for v in first.regressions} == {v.metric for v in second.regressions} == {"train_seconds"}
    assert all("confirmed by a second run" in v.message for v in second.regressions)
    clean = measured(synthetic_run("b", seed=2))
    assert nightly.judge(pooled(), clean, None, True, console)[-1].suspects == [] and clean.calls == 1


@pytest.mark.slow
def test_a_tensorflow_only_night_is_calibrated_by_the_runner(tmp_path, mnist, console):
    # The runner skips the torch workload for a TensorFlow-only run; the night asks for it anyway,
    # since its comparison scales timings by it. The run's calibration only: no per-cell ones.
    from benchmarks.fault_injection import write_suite
    from harness import calibration
    from harness.store import ResultsStore

    suite = str(write_suite(tmp_path / "suites", models=2))
    request = nightly.NightlyRequest(suites=[suite], reports=tmp_path / "reports",
                                     overrides=[Override("matrix.backends", ["tensorflow"], "test")])
    results = nightly.measure(request, suite, "smoke", console)
    measured = results.environment["calibration"]
    assert len(measured["samples"]) == 2 * calibration.SAMPLES and measured["device"] == "cpu"
    assert results.calibration_seconds == measured["seconds"] > 0 and "drift" in measured
    with ResultsStore(request.reports / "results.db") as store:
        cells = store.cells(results.run_id)
    assert [cell.cell.backend for cell in cells] == ["tensorflow"] * 2
    assert all("calibration" not in cell.result.artifacts for cell in cells)


# Issue 22, item 3: a misspelt fail= metric is refused against the baseline before anything is measured
def test_a_misspelt_fail_metric_is_refused_before_anything_runs(tmp_path, console, monkeypatch):
    from pathlib import Path

    from harness.errors import UserError

    def measure(*args):
        raise AssertionError("the suite was measured before fail= was checked")

    monkeypatch.setattr(nightly, "measure", measure)
    committed = Path(__file__).resolve().parent.parent / "reports" / "baselines" / "cpu-nightly.json"
    request = nightly.NightlyRequest(suites=["mlp_baseline"], baseline=committed, fail="tets_accuracy:-1",
                                     reports=tmp_path)
    with pytest.raises(UserError, match=r"^fail=: no metric 'tets_accuracy' in the runs of mlp_baseline; metrics: "
                                        r".*\btest_accuracy\b"):
        nightly.run(request, console)
    assert not any(tmp_path.iterdir())
