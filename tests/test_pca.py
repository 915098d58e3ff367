"""Tests for harness.algorithms.pca on synthetic data whose principal axes and variances are known exactly."""

import numpy as np
import pytest
from scipy.linalg import hadamard
from scipy.stats import ortho_group

from harness.algorithms.pca import components_for, fit_pca, flatten

STDS = np.array([3.0, 2.0, 1.0])  # variances 9, 4, 1 along three hidden orthogonal axes


def known_data(features: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """8 samples in ``features`` dimensions with variances 9, 4, 1 along rotated axes, 0 elsewhere.

    Hadamard columns are zero-mean and orthogonal, so the sample covariance is exactly diagonal in
    the hidden coordinates; a random rotation hides the axes from the PCA.
    """
    hidden = hadamard(8)[:, 1:4] * STDS  # (8, 3)
    rotation = ortho_group.rvs(features, random_state=0)[:, :3]  # orthonormal columns
    return hidden @ rotation.T + 5.0, hidden  # the offset checks that PCA centres the data


def test_ratios_match_the_known_variances():
    data, _ = known_data()
    fit = fit_pca(data)
    np.testing.assert_allclose(fit.ratios[:3], [9 / 14, 4 / 14, 1 / 14], atol=1e-12)
    np.testing.assert_allclose(fit.ratios[3:], 0.0, atol=1e-12)
    np.testing.assert_allclose(fit.cumulative[-1], 1.0)


def test_projection_recovers_the_hidden_coordinates_up_to_sign():
    data, hidden = known_data()
    projection = fit_pca(data).projection
    assert projection.shape == (8, 2)
    for axis in range(2):
        sign = np.sign(projection[0, axis] / hidden[0, axis])
        np.testing.assert_allclose(projection[:, axis], sign * hidden[:, axis], atol=1e-10)


@pytest.mark.parametrize(("share", "expected"), [(0.5, 1), (9 / 14, 1), (0.9, 2), (0.95, 3), (1.0, 3)])
def test_components_for_a_variance_share(share, expected):
    data, _ = known_data()
    assert fit_pca(data).components_for(share) == expected


def test_components_for_rejects_shares_outside_0_1():
    with pytest.raises(ValueError, match="share must be in"):
        components_for(np.array([0.5, 0.5]), 1.5)


def test_uint8_images_are_scaled_and_flattened():
    images = np.array([[[0, 255], [255, 0]], [[255, 0], [0, 255]], [[0, 0], [0, 0]]], dtype=np.uint8)
    rows = flatten(images)
    assert rows.shape == (3, 4)
    assert rows.max() == 1.0
    # Scaling every pixel by the same factor changes no ratio.
    np.testing.assert_allclose(fit_pca(images).ratios, fit_pca(images.astype(np.float64)).ratios, atol=1e-12)


# --- the pca suite end to end (real MNIST, a few hundred images) -----------------------------------


@pytest.mark.slow
def test_pca_suite_smoke_matches_a_direct_fit(reports, mnist, console):
    import csv

    from harness import runner
    from harness.runner import RunRequest
    from harness.suite.overrides import Override

    overrides = [Override("data.train_samples", 600), Override("data.test_samples", 300)]
    outcome = runner.run(RunRequest("pca", "smoke", overrides=overrides, reports=reports), console)
    with open(outcome.folder / "results.csv") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    direct = fit_pca(mnist.train_images[:600])  # the task takes the first N images in file order
    assert float(rows["train"]["ratio_1"]) == pytest.approx(direct.ratios[0], abs=1e-9)
    assert int(rows["train"]["components"]) == direct.components_for(0.95)
    assert rows["test"]["samples"] == "300"
    table = (outcome.folder / "table.md").read_text()
    assert "| explained variance, component 1 (%) | train | 600 |" in table
    assert "| 154 |" in table  # the report's component count beside ours
    for name in ("explained_variance.png", "scatter_train.png", "scatter_train_first400.png", "scatter_test.png"):
        assert (outcome.folder / name).stat().st_size > 10_000


@pytest.mark.slow
def test_repeats_time_every_fit_and_give_compare_a_spread(reports, console):
    from harness import runner
    from harness.compare import baselines
    from harness.runner import RunRequest
    from harness.store import ResultsStore
    from harness.suite.overrides import Override

    overrides = [Override("data.train_samples", 400), Override("data.test_samples", 300), Override("repeats", 3),
                 Override("options.sets", ["train"])]
    outcome = runner.run(RunRequest("pca", "smoke", overrides=overrides, reports=reports), console)
    with ResultsStore(reports / "results.db") as store:
        run = baselines.from_store(store, outcome.run.run_id)
    (cell,) = run.cells
    timings = cell.samples["seconds"]
    assert len(timings) == 3 and all(seconds > 0 for seconds in timings)
    assert cell.record["seconds"] == pytest.approx(float(np.median(timings)))
    assert cell.values("seconds") == timings  # what compare's rank test reads: three samples, not one
    # Calibrated like a training run (the run's, and the cell's own), so compare can tell load from code.
    assert run.calibration_seconds > 0 and cell.calibration > 0
