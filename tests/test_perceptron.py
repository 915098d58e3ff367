"""Tests for harness.algorithms.perceptron: the report's update rule on hand-made sets, against a NumPy reference."""

import numpy as np
import pytest

from harness.algorithms.perceptron import accuracy, pair_data, predict, train

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


# --- the perceptron suite: planning, and end to end on a small subset ------------------------------


def test_full_suite_plans_all_45_pairs_and_the_extra_curve_rates():
    from harness.tasks import load_suite, task_for

    suite = load_suite("perceptron", "full")
    cells = task_for("perceptron").plan(suite)
    table = [c for c in cells if c.params["learning_rate"] == 0.08]
    assert len(table) == 45 and table[0].model == "pair 0-1" and table[-1].model == "pair 8-9"
    curves = sorted((c.model, c.params["learning_rate"]) for c in cells if c.params["learning_rate"] != 0.08)
    assert curves == [("pair 0-1", 0.004), ("pair 0-1", 1.0), ("pair 2-3", 0.004), ("pair 2-3", 1.0)]
    assert len({c.key for c in cells}) == len(cells) == 49


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


@pytest.mark.slow
def test_perceptron_suite_smoke(reports, mnist, console):
    import csv
    import json

    from harness import runner
    from harness.runner import RunRequest
    from harness.suite.overrides import Override

    overrides = [Override("data.train_samples", 1500), Override("data.test_samples", 500)]
    outcome = runner.run(RunRequest("perceptron", "smoke", overrides=overrides, reports=reports), console)
    with open(outcome.folder / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    table = [r for r in rows if r["learning_rate"] == "0.08"]
    assert [r["pair"] for r in table] == ["0,1", "2,3", "1,2"]
    for row in table:
        assert row["lp_verdict"] in ("separable", "inseparable", "undecided")
        # A pair whose perceptron made no training error is separable; the LP must agree.
        if row["train_errors"] == "0":
            assert row["lp_verdict"] == "separable" and row["converged"] == "True"
    assert float(table[0]["test_accuracy"]) > 98  # 0 vs 1 is easy
    document = json.loads((outcome.folder / "results.json").read_text())
    curve = next(c for c in document["cells"] if c["record"]["learning_rate"] == 0.004)
    assert len(curve["artifacts"]["losses"]) == curve["record"]["iterations"] + 1
    assert "| 2,3 |" in (outcome.folder / "table.md").read_text()
    for name in ("pairs.md", "learning_curves.png", "weights.png"):
        assert (outcome.folder / name).stat().st_size > 500
