"""The drift check: a slow drift over a week of nights is caught, same-code nights are not flagged."""

from __future__ import annotations

import random

import pytest

from harness.compare import baselines
from harness.compare.results import pool
from harness.history import drift
from harness.store import ResultsStore
from tests.history_runs import stored_run

NOISE = 0.04  # run-to-run spread of a shared CI runner's timings (relative standard deviation)


def nights(tmp_path, name: str, per_night: float, seed: int, count: int = 7, start: int = 10):
    """A pooled baseline of four runs, then ``count`` nights whose training grows by ``per_night``."""
    reports = tmp_path / name
    rng = random.Random(seed)
    for index in range(4):
        stored_run(reports, f"base{index}", index, "ci", noise=NOISE, rng=rng)
    for night in range(count):
        stored_run(reports, f"night{night}", start + night, "ci", seconds=10.0 * (1 + per_night) ** night,
                   noise=NOISE, rng=rng)
    with ResultsStore(reports / "results.db") as store:
        runs = baselines.runs_of(store, "demo")
    return pool(runs[:4]), runs[4:]


def drifting(trends):
    return sorted({(t.row, t.metric) for t in trends if t.drifting})


def test_three_percent_a_night_over_seven_nights_is_caught(tmp_path):
    baseline, week = nights(tmp_path, "drift", 0.03, seed=1)
    trends = drift.check(baseline, week)
    assert drifting(trends) == [("MLP · tensorflow/cpu", "train_seconds"), ("MLP · torch/cpu", "train_seconds")]
    torch = next(t for t in trends if t.row == "MLP · torch/cpu" and t.metric == "train_seconds")
    assert 1.5 < torch.per_day < 4.5 and torch.at_newest > 10 and torch.nights == 7
    assert "drifting" in torch.message and "limit train_seconds:+10%" in torch.message
    # Accuracy did not move: fitted, not flagged.
    assert {t.metric for t in trends} == {"train_seconds", "test_accuracy"}


def test_same_code_nights_are_not_flagged(tmp_path):
    baseline, week = nights(tmp_path, "same", 0.0, seed=2)
    assert drifting(drift.check(baseline, week)) == []


def test_too_few_nights_fit_nothing(tmp_path):
    baseline, week = nights(tmp_path, "few", 0.03, seed=3, count=2)
    assert drift.check(baseline, week) == []


@pytest.mark.parametrize("per_night", [0.0, 0.03])
def test_a_fitted_line_through_exact_points_needs_no_noise_test(per_night):
    _, slope, error, freedom = drift.fit([0, 1, 2, 3], [0.0, per_night, 2 * per_night, 3 * per_night])
    assert slope == pytest.approx(per_night) and error == pytest.approx(0.0, abs=1e-12) and freedom == 2
    assert drift.slope_p_value(slope, 0.0, +1, freedom) == (0.0 if per_night else 1.0)


def test_nightly_checks_the_last_nights_stored_and_says_what_drifts(tmp_path):
    from io import StringIO

    from rich.console import Console

    from harness.commands import nightly

    baseline, _ = nights(tmp_path, "store", 0.03, seed=1)
    output = StringIO()
    request = nightly.NightlyRequest(reports=tmp_path / "store", drift_nights=7)
    trends = nightly.check_drift(request, "demo", "nightly", baseline, Console(file=output, width=300))
    # The store holds the four baseline runs too: the last seven stored runs are the drifting week.
    assert [t.nights for t in trends if t.drifting] == [7, 7]
    assert "demo: drift over the last 7 nights: MLP · torch/cpu: train_seconds drifting" in output.getvalue()
    outcome = nightly.SuiteOutcome("demo", [], [], trends)
    assert len(outcome.drifting) == 2 and len(outcome.as_dict()["drift"]) == 4
    assert nightly.check_drift(nightly.NightlyRequest(reports=tmp_path / "store", drift_nights=0), "demo", "nightly",
                               baseline, Console(file=output)) == []
