"""Tests for harness.algorithms.separability: both LP forms on small sets whose answer is known, and the cache."""

import json

import numpy as np
import pytest

from harness.algorithms import separability
from harness.algorithms.separability import data_hash, decide, decide_cached

XOR_ROWS = np.array([[0, 0], [1, 1], [1, 0], [0, 1]], dtype=np.float64)
XOR_SIGNS = np.array([-1, -1, 1, 1], dtype=np.float64)


def blobs(n=60, features=8, gap=2.0, seed=0):
    """Two clouds split by the first feature: separable with a margin of about gap/2."""
    rng = np.random.default_rng(seed)
    signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    rows = rng.uniform(0, 1, size=(n, features))
    rows[:, 0] = np.where(signs > 0, 1 + gap / 2, -gap / 2) + rng.uniform(0, 0.5, n) * signs
    return rows, signs


def test_separable_set_gets_a_checked_hyperplane():
    rows, signs = blobs()
    verdict = decide(rows, signs, time_limit=30)
    assert verdict.verdict == "separable"
    assert verdict.form == "direct"
    # The LP asks for margins >= 1; HiGHS meets that to its tolerance.
    assert verdict.certificate == pytest.approx(1.0, abs=1e-6)
    assert [attempt.outcome for attempt in verdict.attempts] == ["certified"]


def test_xor_is_inseparable_by_the_hull_form():
    verdict = decide(XOR_ROWS, XOR_SIGNS, time_limit=30)
    assert verdict.verdict == "inseparable"
    assert verdict.form == "hull"
    # The direct form is infeasible but gives no certificate, so the hull form has to answer.
    assert [(a.form, a.outcome) for a in verdict.attempts] == [("direct", "infeasible"), ("hull", "certified")]
    assert verdict.certificate <= separability.HULL_TOLERANCE


def test_a_point_in_both_classes_makes_the_hulls_meet():
    rows, signs = blobs(n=20)
    rows = np.vstack([rows, rows[:1]])
    signs = np.append(signs, -signs[0])
    verdict = decide(rows, signs, time_limit=30, order=("hull",))
    assert verdict.verdict == "inseparable"
    assert verdict.certificate < 1e-12


def test_an_infeasibility_claim_alone_leaves_the_pair_undecided():
    # Each form's infeasibility is the other answer, but without a certificate it is not trusted.
    assert decide(XOR_ROWS, XOR_SIGNS, order=("direct",)).verdict == "undecided"
    rows, signs = blobs()
    verdict = decide(rows, signs, order=("hull",))
    assert verdict.verdict == "undecided"
    assert verdict.form == ""
    assert verdict.attempts[0].outcome == "infeasible"


def test_a_failed_certificate_check_is_not_a_verdict(monkeypatch):
    # A "solution" that does not separate: the check must catch it whatever the solver says.
    class Fake:
        status, message = 0, "ok"
        x = np.zeros(3)  # w = 0, b = 0: every margin is 0

    monkeypatch.setattr(separability, "linprog", lambda *args, **kwargs: Fake())
    verdict = decide(np.array([[0.0, 0.0], [5.0, 5.0]]), np.array([-1.0, 1.0]), order=("direct",))
    assert verdict.verdict == "undecided"
    assert verdict.attempts[0].outcome == "feasible, check failed"


def test_rejects_one_class_and_bad_labels():
    with pytest.raises(ValueError, match="both classes"):
        decide(XOR_ROWS, np.ones(4))
    with pytest.raises(ValueError, match="labels must be"):
        decide(XOR_ROWS, np.array([0, 1, 1, 1.0]))


def test_verdicts_are_cached_per_data_hash(tmp_path, monkeypatch):
    rows, signs = blobs()
    first = decide_cached(rows, signs, folder=tmp_path, label="blobs")
    assert not first.cached
    stored = json.loads((tmp_path / f"{data_hash(rows, signs)}.json").read_text())
    assert stored["label"] == "blobs" and stored["verdict"]["verdict"] == "separable"

    monkeypatch.setattr(separability, "decide", lambda *a, **k: pytest.fail("solved again"))
    again = decide_cached(rows, signs, folder=tmp_path)
    assert again.cached and again.verdict == "separable" and again.certificate == first.certificate
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left nothing behind


def test_undecided_verdicts_are_not_cached(tmp_path):
    verdict = decide_cached(XOR_ROWS, XOR_SIGNS, order=("direct",), folder=tmp_path)
    assert verdict.verdict == "undecided"
    assert not list(tmp_path.iterdir())


def test_data_hash_depends_on_rows_and_labels():
    rows, signs = blobs()
    assert data_hash(rows, signs) == data_hash(rows.copy(), signs.copy())
    assert data_hash(rows, signs) != data_hash(rows, -signs)
    assert data_hash(rows, signs) != data_hash(rows[:-1], signs[:-1])


def test_few_samples_in_many_dimensions_get_a_well_scaled_hyperplane():
    # 30 random points in 200 dimensions are separable under any labelling. The feasibility vertex
    # can be huge here; the check rejects it and the |w|_1-minimising retry gives a usable one.
    rng = np.random.default_rng(2)
    rows = (rng.uniform(size=(30, 200)) > 0.8).astype(np.float64)
    signs = np.where(rng.uniform(size=30) > 0.5, 1.0, -1.0)
    verdict = decide(rows, signs, time_limit=30, order=("direct",))
    assert verdict.verdict == "separable"
    assert verdict.certificate == pytest.approx(1.0, abs=1e-6)
