"""Tests for harness.paper.algorithms.perceptron: the report's update rule on hand-made sets, against a NumPy reference."""

import numpy as np
import pytest

from harness.paper.algorithms import perceptron
from harness.paper.algorithms.perceptron import Run, accuracy, pair_data, predict, train, train_pairs

LR = 0.5  # a power of two keeps every hand-computed weight exact in float32


def reference_train(rows, signs, learning_rate, updates):
    """The rule written out plainly in NumPy (dense, one sample at a time in the sum)."""
    w, b = np.zeros(rows.shape[1]), 0.0
    losses = []
    for step in range(updates + 1):
        f = np.sign(rows @ w + b)
        losses.append(np.mean(np.abs(f - signs)))
        if step == updates:
            break
        for x, y, fx in zip(rows, signs, f):
            if y != fx:
                w = w + learning_rate * (y - fx) * x
                b = b + learning_rate * (y - fx)
    return w, b, losses


def test_first_update_uses_every_sample_when_all_outputs_are_zero():
    # Zero weights give sign(0) = 0 for both samples: both are misclassified with y - f = y.
    rows = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    signs = np.array([-1.0, 1.0], dtype=np.float32)
    result = train(rows, signs, learning_rate=LR, max_iterations=5)
    np.testing.assert_array_equal(result.weights, [-0.5, 1.0])  # 0.5 * (-[1, 0] + [0, 2])
    assert result.bias == 0.0  # 0.5 * (-1 + 1)
    assert result.losses == [1.0, 0.0]
    assert (result.iterations, result.converged) == (1, True)


@pytest.mark.parametrize(
    ("updates", "weights", "bias", "loss"),
    [
        (1, [0.0, -0.5], 0.0, 0.5),  # x1 lands on the hyperplane (f = 0, costs 1); x2 is right
        (2, [0.5, -0.5], 0.5, 1.0),  # only x1 updated (y - f = 1); now x2 has the wrong sign (costs 2)
        (3, [-0.5, -1.5], -0.5, 1.0),  # only x2 updated, with y - f = -2
    ],
)
def test_update_rule_step_by_step(updates, weights, bias, loss):
    rows = np.array([[1.0, 0.0], [1.0, 1.0]], dtype=np.float32)
    signs = np.array([1.0, -1.0], dtype=np.float32)
    result = train(rows, signs, learning_rate=LR, max_iterations=updates)
    np.testing.assert_array_equal(result.weights, weights)
    assert result.bias == bias
    assert result.losses[-1] == loss
    assert result.iterations == updates and not result.converged


def blobs(n=200, features=20, gap=3.0, seed=0):
    """Two Gaussian clouds far enough apart to be linearly separable."""
    rng = np.random.default_rng(seed)
    signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0).astype(np.float32)
    rows = rng.normal(size=(n, features)).astype(np.float32) * 0.3
    rows[:, 0] += gap * signs / 2
    return rows, signs


def test_converges_on_separable_data_and_matches_the_reference():
    rows, signs = blobs()
    result = train(rows, signs, learning_rate=0.1)
    assert result.converged
    assert result.final_loss == 0.0  # one error would already cost 2/200 > 0.001
    assert accuracy(result.weights, result.bias, rows, signs) == 1.0
    # The batch rule equals the plain per-sample sum of the reference (no update happens mid-sum).
    _, _, reference_losses = reference_train(rows.astype(np.float64), signs, 0.1, result.iterations)
    np.testing.assert_allclose(result.losses, reference_losses, atol=1e-6)


def test_matches_the_reference_on_overlapping_data():
    rows, signs = blobs(n=120, gap=0.5, seed=1)
    result = train(rows, signs, learning_rate=0.05, max_iterations=30)
    w, b, losses = reference_train(rows.astype(np.float64), signs, 0.05, 30)
    np.testing.assert_allclose(result.losses, losses, atol=1e-6)
    np.testing.assert_allclose(result.weights, w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.bias, b, rtol=1e-4, atol=1e-5)


def test_zero_initial_weights_make_the_learning_rate_irrelevant():
    rows, signs = blobs(gap=1.0)
    slow = train(rows, signs, learning_rate=0.001, max_iterations=50)
    fast = train(rows, signs, learning_rate=10.0, max_iterations=50)
    assert slow.losses == fast.losses
    np.testing.assert_allclose(fast.weights, slow.weights * 1e4, rtol=1e-4)


def test_pixel_rows_train_exactly_whatever_the_sample_order():
    # Pixels k/255 are trained on the integer grid k, where float64 sums are exact: shuffling the
    # samples (another summation order, as another device or thread count would use) changes no bit.
    rng = np.random.default_rng(5)
    images = (rng.uniform(size=(300, 28, 28)) ** 4 * 255).astype(np.uint8)  # mostly dark, like MNIST
    labels = rng.integers(0, 2, size=300)
    rows, signs = pair_data(images, labels, (0, 1))
    order = rng.permutation(len(rows))
    first = train(rows, signs, learning_rate=0.3, max_iterations=40)
    shuffled = train(rows[order], signs[order], learning_rate=0.3, max_iterations=40)
    other_rate = train(rows, signs, learning_rate=7.0, max_iterations=40)
    assert first.losses == shuffled.losses == other_rate.losses
    np.testing.assert_array_equal(first.weights, shuffled.weights)
    assert first.bias == shuffled.bias


def test_random_initial_weights_are_seeded():
    rows, signs = blobs(gap=1.0)
    first = train(rows, signs, learning_rate=0.01, init_std=1.0, seed=3, max_iterations=5)
    again = train(rows, signs, learning_rate=0.01, init_std=1.0, seed=3, max_iterations=5)
    other = train(rows, signs, learning_rate=0.01, init_std=1.0, seed=4, max_iterations=5)
    assert first.losses == again.losses and first.losses != other.losses


def test_xor_never_converges_and_stops_at_the_cap():
    rows = np.array([[0, 0], [1, 1], [1, 0], [0, 1]], dtype=np.float32)
    signs = np.array([-1, -1, 1, 1], dtype=np.float32)
    result = train(rows, signs, learning_rate=LR, max_iterations=40)
    assert not result.converged
    assert result.iterations == 40
    assert len(result.losses) == 41
    assert min(result.losses) >= 0.5  # at least one of four points is always wrong (costs >= 2/4)


def test_pair_data_labels_the_first_digit_minus_one():
    images = np.stack([np.full((28, 28), v, np.uint8) for v in (0, 255, 51, 102)])
    labels = np.array([3, 5, 3, 7])
    rows, signs = pair_data(images, labels, (5, 3))
    assert rows.shape == (3, 784)
    np.testing.assert_allclose(rows[:, 0], [0.0, 1.0, 0.2])
    np.testing.assert_array_equal(signs, [1, -1, 1])


def test_predict_returns_zero_on_the_hyperplane():
    rows = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(predict(np.array([1.0, -1.0], np.float32), 0.0, rows), [0, 1, 0])


def test_rejects_bad_arguments():
    rows, signs = blobs(n=4)
    with pytest.raises(ValueError, match="learning_rate"):
        train(rows, signs, learning_rate=0.0)
    with pytest.raises(ValueError, match="labels must be"):
        train(rows, signs * 2, learning_rate=0.1)
    with pytest.raises(ValueError, match="two different classes"):
        pair_data(np.zeros((2, 28, 28), np.uint8), np.array([1, 1]), (1, 1))


# --- all pairs at once: train_pairs against train, int8 against float64 ---------------------------


def digit_like(n=900, classes=4, side=8, seed=7):
    """uint8 images of ``classes`` noisy templates, mostly dark like MNIST, and their labels."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(size=(classes, side, side)) ** 3
    if classes > 3:
        templates[3] = templates[2] * 0.9 + 0.1 * templates[3]  # classes 2 and 3 overlap: that pair hits the cap
    labels = rng.integers(0, classes, size=n)
    images = np.clip(templates[labels] + rng.normal(0, 0.25, size=(n, side, side)), 0, 1) ** 2
    images[images < 0.15] = 0
    return (images * 255).astype(np.uint8), labels


@pytest.mark.parametrize("kernel", ["auto", "float64"])
def test_all_pairs_together_equal_each_pair_alone(kernel):
    images, labels = digit_like()
    scaled = images.astype(np.float32) / np.float32(255.0)  # as harness.data scales them
    pairs = [(0, 1), (2, 3), (1, 3), (3, 0), (2, 1)]
    runs = [Run(pair, 0.08) for pair in pairs] + [Run((2, 3), 1.0), Run((0, 1), 0.004)]
    together = train_pairs(scaled, labels, runs, max_iterations=60, threshold=0.02, kernel=kernel)
    assert together[0].kernel == ("int8" if kernel == "auto" and perceptron.int8_kernel_works() else "float64")
    for run, result in zip(runs, together):
        rows, signs = pair_data(scaled, labels, run.pair)
        alone = train(rows, signs, learning_rate=run.learning_rate, max_iterations=60, threshold=0.02)
        # Exact integer arithmetic on the pixel grid: the same run to the bit.
        assert result.losses == alone.losses, run
        assert (result.iterations, result.converged) == (alone.iterations, alone.converged)
        np.testing.assert_array_equal(result.weights, alone.weights)
        assert result.bias == alone.bias
        np.testing.assert_array_equal(result.hyperplane[0], alone.hyperplane[0])
    assert any(r.converged for r in together) and any(not r.converged for r in together)


def test_int8_and_float64_kernels_agree_on_mnist_sized_weights():
    # Enough updates for the weights to need several base-256 digits (|v| > 2^16).
    images, labels = digit_like(n=2000, classes=3, side=12, seed=2)
    runs = [Run((0, 1), 0.1), Run((1, 2), 0.1), Run((0, 2), 0.1)]
    fast = train_pairs(images, labels, runs, max_iterations=150, threshold=0.0, kernel="auto")
    exact = train_pairs(images, labels, runs, max_iterations=150, threshold=0.0, kernel="float64")
    assert max(float(np.abs(r.hyperplane[0]).max()) for r in exact) > 2**16 * 255
    for a, b in zip(fast, exact):
        assert a.losses == b.losses
        np.testing.assert_array_equal(a.hyperplane[0], b.hyperplane[0])


def test_rows_off_the_pixel_grid_and_random_initial_weights_run_in_float64():
    rows, signs = blobs(n=120, gap=0.5, seed=1)
    labels = (signs > 0).astype(int)
    result, = train_pairs(rows, labels, [Run((0, 1), 0.05)], max_iterations=30)
    alone = train(rows, signs, learning_rate=0.05, max_iterations=30)
    assert result.kernel == "float64"
    np.testing.assert_allclose(result.losses, alone.losses)
    np.testing.assert_allclose(result.weights, alone.weights, rtol=1e-6, atol=1e-6)
    images, labels = digit_like(n=300, classes=2)
    seeded = train_pairs(images, labels, [Run((0, 1), 0.01, init_std=1.0, seed=3)], max_iterations=10)[0]
    rows, signs = pair_data(images, labels, (0, 1))
    alone = train(rows, signs, learning_rate=0.01, init_std=1.0, seed=3, max_iterations=10)
    assert seeded.kernel == "float64"
    np.testing.assert_allclose(seeded.losses, alone.losses)
    with pytest.raises(ValueError, match="int8"):
        train_pairs(images, labels, [Run((0, 1), 0.01, init_std=1.0)], kernel="int8")


def test_a_run_that_converges_with_errors_left_goes_on_to_a_separating_hyperplane():
    from harness.paper.algorithms.separability import check_hyperplane

    images, labels = digit_like(n=1500, classes=4, seed=4)
    rows, signs = pair_data(images, labels, (0, 1))
    threshold = 0.003
    # (2, 3) hits the cap, so the passes go on: (0, 1) continues beside it at little cost.
    result, capped = train_pairs(images, labels, [Run((0, 1), 0.08), Run((2, 3), 0.08)], max_iterations=400,
                                 threshold=threshold)
    alone = train(rows, signs, learning_rate=0.08, max_iterations=400, threshold=threshold)
    assert result.losses == alone.losses and result.converged and 0 < result.final_loss <= threshold
    assert not capped.converged and capped.separating is None
    # The reported run is unchanged; the continued one reached zero errors and separates every sample.
    w, b = result.separating
    _, certified = check_hyperplane(rows.astype(np.float64), signs.astype(np.float64), w, b)
    assert certified
    assert not check_hyperplane(rows.astype(np.float64), signs.astype(np.float64), *result.hyperplane)[1]


def test_int8_products_are_exact_whatever_the_strides():
    import torch

    if not perceptron.int8_kernel_works():
        pytest.skip("torch._int_mm is not available or not exact here")
    column = torch.randint(-2, 3, (500, 1), dtype=torch.int8)
    rows = torch.randint(-128, 128, (500, 37), dtype=torch.int8)
    # The transpose of an (n, 1) matrix: the shape torch 2.13's CPU _int_mm misread before the copy.
    assert torch.equal(perceptron._int8_matmul(column.T, rows), column.T.to(torch.int32) @ rows.to(torch.int32))


def test_train_pairs_rejects_bad_runs():
    images, labels = digit_like(n=100, classes=2)
    with pytest.raises(ValueError, match="two different classes"):
        train_pairs(images, labels, [Run((1, 1), 0.1)])
    with pytest.raises(ValueError, match="no samples of class 7"):
        train_pairs(images, labels, [Run((0, 7), 0.1)])
    with pytest.raises(ValueError, match="learning_rate"):
        train_pairs(images, labels, [Run((0, 1), 0.0)])
    assert train_pairs(images, labels, []) == []


# --- the perceptron suite: planning, and end to end on a small subset ------------------------------


def test_full_suite_is_one_cell_per_seed_and_device_training_all_45_pairs_and_the_extra_curve_rates():
    from harness.paper.tasks.perceptron import MODEL, planned_runs
    from harness.suite.overrides import Override
    from harness.tasks import load_suite, task_for

    task = task_for("perceptron")
    suite = load_suite("perceptron", "full")
    [cell] = task.plan(suite)
    assert (cell.model, cell.device, cell.seed, cell.params) == (MODEL, "cpu", 0, {})
    runs = planned_runs(task.options(suite))
    table = [pair for pair, rate in runs if rate == 0.08]
    assert len(table) == 45 and table[0] == (0, 1) and table[-1] == (8, 9)
    curves = sorted((pair, rate) for pair, rate in runs if rate != 0.08)
    assert curves == [((0, 1), 0.004), ((0, 1), 1.0), ((2, 3), 0.004), ((2, 3), 1.0)]
    assert len(runs) == 49
    wider = load_suite("perceptron", "full", [Override("matrix.seeds", [0, 1])])
    assert [(c.seed, c.model) for c in task.plan(wider)] == [(0, MODEL), (1, MODEL)]


def stored_cell(entries, **record):
    from harness.cells import Cell, CellResult, StoredCell
    from harness.paper.tasks.perceptron import MODEL

    record = {"suite": "perceptron", "backend": "torch", "device": "cpu", "seed": 0, "status": "ok", "error": "",
              "executor": "local", "node": "here", "queued_seconds": 0.0, "pairs": 2, "seconds": 1.5, **record}
    cell = Cell("perceptron", "perceptron", MODEL, "torch", "cpu", 0, {}, {})
    return StoredCell(cell, CellResult("ok", record, {"units": entries, "calibration": {"seconds": 0.01}}))


def test_a_cells_pairs_read_back_as_one_record_each_with_the_cells_shared_columns():
    from harness.cells import units as cell_units

    entries = [{"model": "pair 0-1", "params": {"learning_rate": 0.08},
                "record": {"pair": "0,1", "learning_rate": 0.08, "seconds": 0.2, "lp_verdict": "separable"},
                "losses": [0.5, 0.0], "weights": [1.0], "bias": 0.0, "separability": {"verdict": "separable"}},
               {"model": "pair 2-3", "params": {"learning_rate": 0.004},
                "record": {"pair": "2,3", "learning_rate": 0.004, "seconds": 0.3}, "losses": [1.0], "weights": [2.0],
                "bias": 1.0}]
    units = cell_units([stored_cell(entries)])
    assert [u.cell.key for u in units] == ["model=pair 0-1|backend=torch|device=cpu|seed=0|learning_rate=0.08",
                                           "model=pair 2-3|backend=torch|device=cpu|seed=0|learning_rate=0.004"]
    first = units[0]
    assert first.record == {"suite": "perceptron", "backend": "torch", "device": "cpu", "seed": 0, "status": "ok",
                            "error": "", "executor": "local", "node": "here", "queued_seconds": 0.0,
                            "model": "pair 0-1", "pair": "0,1", "learning_rate": 0.08, "seconds": 0.2,
                            "lp_verdict": "separable"}  # the pair's seconds, not the cell's
    assert first.result.artifacts == {"losses": [0.5, 0.0], "weights": [1.0], "bias": 0.0,
                                      "separability": {"verdict": "separable"}, "calibration": {"seconds": 0.01}}
    assert "separability" not in units[1].result.artifacts


def test_claims_read_the_pairs_of_a_perceptron_cell():
    from harness.cells import units
    from harness.study import claims
    from harness.suite.study import Claim

    entries = [{"model": "pair 0-1", "params": {"learning_rate": 0.08},
                "record": {"pair": "0,1", "learning_rate": 0.08, "report_verdict": "separable",
                           "lp_verdict": "separable"}},
               {"model": "pair 1-2", "params": {"learning_rate": 0.08},
                "record": {"pair": "1,2", "learning_rate": 0.08, "report_verdict": "inseparable",
                           "lp_verdict": "separable"}}]
    claim = Claim(text="inseparable", kind="all", cells={"report_verdict": "inseparable"},
                  expect={"lp_verdict": "inseparable"})
    [result] = claims.evaluate("perceptron", [claim], units([stored_cell(entries)]))
    assert result.verdict == claims.CONTRADICTED and result.parts[0].note == "not so for pair 1-2"


def test_report_verdicts_come_from_its_list_and_its_table():
    from harness.tasks import load_suite, task_for

    options = task_for("perceptron").options(load_suite("perceptron", "full"))
    assert options.report_verdict((0, 4)) == "separable"  # in its list
    assert options.report_verdict((1, 2)) == "inseparable"  # 1001 iterations in Table 2.1
    assert options.report_verdict((2, 5)) is None  # not mentioned


def test_a_pair_of_one_digit_is_a_user_error():
    from harness.errors import UserError
    from harness.suite.overrides import Override
    from harness.tasks import load_suite

    with pytest.raises(UserError, match="two different digits 0-9, got \\[3, 3\\]"):
        load_suite("perceptron", "smoke", [Override("options.pairs", [[3, 3]])])


def run_files(folder):
    """A run folder's results.csv rows, its one cell, and that cell's pairs as records (harness.cells.units)."""
    import csv
    import json

    from harness.cells import Cell, CellResult, StoredCell
    from harness.cells import units

    with open(folder / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    cells = [StoredCell(Cell(**c["cell"]), CellResult(c["status"], c["record"], c["artifacts"], c["error"]))
             for c in json.loads((folder / "results.json").read_text())["cells"]]
    return rows, cells, units(cells)


@pytest.mark.slow
def test_perceptron_suite_smoke(reports, mnist, console):
    import csv

    from harness import runner
    from harness.runner import RunRequest
    from harness.suite.overrides import Override

    overrides = [Override("data.train_samples", 1500), Override("data.test_samples", 500)]
    outcome = runner.run(RunRequest("perceptron", "smoke", overrides=overrides, reports=reports), console)
    rows, cells, pairs = run_files(outcome.folder)
    # One cell (one seed, one device) trained every run together: one row in results.csv.
    [row] = rows
    assert (row["model"], row["pairs"], row["runs"], row["status"]) == ("digit pairs", "3", "5", "ok")
    assert int(row["separable"]) + int(row["inseparable"]) + int(row["undecided"]) == 3
    table = [p.record for p in pairs if p.record["learning_rate"] == 0.08]
    assert [r["pair"] for r in table] == ["0,1", "2,3", "1,2"]
    for record in table:
        assert record["lp_verdict"] in ("separable", "inseparable", "undecided")
        # A pair whose perceptron made no training error is separable; the LP must agree.
        if record["train_errors"] == 0:
            assert record["lp_verdict"] == "separable" and record["converged"]
    assert table[0]["test_accuracy"] > 98  # 0 vs 1 is easy
    assert {p.record["batch_runs"] for p in pairs} == {5}
    curve = next(p for p in pairs if p.record["learning_rate"] == 0.004)
    assert len(curve.result.artifacts["losses"]) == curve.record["iterations"] + 1
    # The table of pairs still has one row per table pair.
    with open(outcome.folder / "pairs.csv") as handle:
        assert [r["Pair"] for r in csv.DictReader(handle)] == ["0,1", "2,3", "1,2"]
    table_md = (outcome.folder / "table.md").read_text()
    assert "| 2,3 |" in table_md
    assert "Time per phase: perceptron" in table_md and "certificate checks" in table_md and "LP " in table_md
    for name in ("pairs.md", "learning_curves.png", "weights.png"):
        assert (outcome.folder / name).stat().st_size > 500


@pytest.mark.slow
def test_verdicts_decided_in_worker_processes_are_those_decided_in_the_cell(reports, mnist, console, monkeypatch,
                                                                            tmp_path):
    from harness import runner
    from harness.data import data_dir
    from harness.runner import RunRequest
    from harness.suite.overrides import Override

    overrides = [Override("data.train_samples", 1500), Override("data.test_samples", 500),
                 Override("options.curve_pairs", [])]
    source = data_dir() / "mnist"
    verdicts = {}
    for threads in (1, 2):
        monkeypatch.setenv("HARNESS_THREADS", str(threads))
        monkeypatch.setenv("HARNESS_DATA", str(tmp_path / f"data-{threads}"))  # no verdict from the cache
        (tmp_path / f"data-{threads}").mkdir()
        (tmp_path / f"data-{threads}" / "mnist").symlink_to(source, target_is_directory=True)
        outcome = runner.run(RunRequest("perceptron", "smoke", overrides=overrides, reports=reports / str(threads)),
                             console)
        _, _, pairs = run_files(outcome.folder)
        verdicts[threads] = {p.record["pair"]: (p.record["lp_verdict"], p.record["lp_form"], p.record["lp_workers"],
                                                p.record["lp_cached"]) for p in pairs}
    assert {pair: v[:2] for pair, v in verdicts[1].items()} == {pair: v[:2] for pair, v in verdicts[2].items()}
    assert {v[2] for v in verdicts[1].values()} == {1} and {v[2] for v in verdicts[2].values()} == {2}
    assert not any(v[3] for run in verdicts.values() for v in run.values())


@pytest.mark.slow
def test_repeats_retrain_the_batch_for_timing_and_keep_the_first_results(reports, mnist, console):
    from harness import runner
    from harness.runner import RunRequest
    from harness.suite.overrides import Override

    def run(repeats):
        overrides = [Override("data.train_samples", 1500), Override("data.test_samples", 500),
                     Override("options.curve_pairs", []), Override("options.separability", False),
                     Override("repeats", repeats)]
        outcome = runner.run(RunRequest("perceptron", "smoke", overrides=overrides, reports=reports, resume="no"),
                             console)
        return run_files(outcome.folder)

    (_, [once_cell], once), (_, [thrice_cell], thrice) = run(1), run(3)
    assert "timings" not in once_cell.result.artifacts
    batch_timings = thrice_cell.result.artifacts["timings"]["seconds"]
    assert len(batch_timings) == 3 and thrice_cell.record["seconds"] == pytest.approx(float(np.median(batch_timings)))
    assert [p.cell.model for p in thrice] == ["pair 0-1", "pair 2-3", "pair 1-2"]
    for alone, repeated in zip(once, thrice):
        assert "timings" not in alone.result.artifacts
        timings = repeated.result.artifacts["timings"]
        assert len(timings["seconds"]) == 3 and len(timings["batch_seconds"]) == 3
        assert repeated.record["seconds"] == pytest.approx(float(np.median(timings["seconds"])))
        # Retraining only times: the results are those of one training.
        for key in ("test_accuracy", "iterations", "converged", "final_loss"):
            assert repeated.record[key] == alone.record[key]
        assert repeated.result.artifacts["weights"] == alone.result.artifacts["weights"]


@pytest.mark.slow
def test_each_run_trains_its_own_batch_nothing_is_kept_between_runs(reports, mnist, console, monkeypatch):
    from harness import runner
    from harness.runner import RunRequest
    from harness.suite.overrides import Override

    calls = []
    original = perceptron.train_pairs
    monkeypatch.setattr(perceptron, "train_pairs", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    overrides = [Override("data.train_samples", 1500), Override("data.test_samples", 500),
                 Override("options.curve_pairs", []), Override("options.separability", False)]
    for _ in range(2):  # as harness nightly measures a suspect suite again, in one process
        runner.run(RunRequest("perceptron", "smoke", overrides=overrides, reports=reports, resume="no"), console)
    assert len(calls) == 2  # one cell per run, each training its batch
