"""Tests for harness.paper.algorithms.separability: the LP forms and the cheaper routes on small sets whose answer is known, and the cache."""

import json

import numpy as np
import pytest

from harness.paper.algorithms import separability
from harness.paper.algorithms.separability import data_hash, decide, decide_cached

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
    verdict = decide(rows, signs, time_limit=30, cutting_plane=False)
    assert verdict.verdict == "separable"
    assert verdict.form == "direct"
    # The LP asks for margins >= 1; HiGHS meets that to its tolerance.
    assert verdict.certificate == pytest.approx(1.0, abs=1e-6)
    assert [attempt.outcome for attempt in verdict.attempts] == ["certified"]


def test_xor_is_inseparable_by_the_hull_form():
    verdict = decide(XOR_ROWS, XOR_SIGNS, time_limit=30, cutting_plane=False)
    assert verdict.verdict == "inseparable"
    assert verdict.form == "hull"
    # The direct form is infeasible but gives no certificate, so the hull form has to answer.
    assert [(a.form, a.outcome) for a in verdict.attempts] == [("direct", "infeasible"), ("hull", "certified")]
    assert verdict.certificate <= separability.HULL_TOLERANCE


def test_a_point_in_both_classes_makes_the_hulls_meet():
    rows, signs = blobs(n=20)
    rows = np.vstack([rows, rows[:1]])
    signs = np.append(signs, -signs[0])
    verdict = decide(rows, signs, time_limit=30, order=("hull",), cutting_plane=False)
    assert verdict.verdict == "inseparable"
    assert verdict.certificate < 1e-12


def test_an_infeasibility_claim_alone_leaves_the_pair_undecided():
    # Each form's infeasibility is the other answer, but without a certificate it is not trusted.
    assert decide(XOR_ROWS, XOR_SIGNS, order=("direct",), cutting_plane=False).verdict == "undecided"
    rows, signs = blobs()
    verdict = decide(rows, signs, order=("hull",), cutting_plane=False)
    assert verdict.verdict == "undecided"
    assert verdict.form == ""
    assert verdict.attempts[0].outcome == "infeasible"


def test_a_failed_certificate_check_is_not_a_verdict(monkeypatch):
    # A "solution" that does not separate: the check must catch it whatever the solver says.
    class Fake:
        status, message = 0, "ok"
        x = np.zeros(3)  # w = 0, b = 0: every margin is 0

    monkeypatch.setattr(separability, "linprog", lambda *args, **kwargs: Fake())
    verdict = decide(np.array([[0.0, 0.0], [5.0, 5.0]]), np.array([-1.0, 1.0]), order=("direct",),
                     cutting_plane=False)
    assert verdict.verdict == "undecided"
    assert verdict.attempts[0].outcome == "feasible, check failed"


def test_a_failed_check_in_the_cutting_plane_is_not_a_verdict(monkeypatch):
    class Fake:
        status, message = 0, "ok"
        x = np.array([0.0, 0.0, 0.0, 0.5])  # w = 0, b = 0, "t = 0.5": every margin is really 0

    monkeypatch.setattr(separability, "linprog", lambda *args, **kwargs: Fake())
    verdict = decide(np.array([[0.0, 0.0], [5.0, 5.0]]), np.array([-1.0, 1.0]), order=(), logistic=False)
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


def test_a_cache_folder_that_cannot_be_written_only_skips_caching(tmp_path):
    # A read-only dataset cache (a shared mount) must not fail the perceptron cells that use it.
    rows, signs = blobs()
    (tmp_path / "data").write_text("a file where the cache folder should be")
    verdict = decide_cached(rows, signs, folder=tmp_path / "data" / "separability")
    assert verdict.verdict == "separable" and not verdict.cached


def test_undecided_verdicts_are_not_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(separability, "CUT_FIRST", 0)  # no cutting plane: only the direct form, which cannot tell
    limit_reached = (None, None, separability.Attempt("cutting plane", "limit reached", 0.0))
    monkeypatch.setattr(separability, "_cutting_plane", lambda *a: limit_reached)
    monkeypatch.setattr(separability, "_hull_of_closest", lambda *a: limit_reached)
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
    verdict = decide(rows, signs, time_limit=30, order=("direct",), cutting_plane=False)
    assert verdict.verdict == "separable"
    assert verdict.certificate == pytest.approx(1.0, abs=1e-6)


# --- the cheaper routes: a given hyperplane, and the cutting plane --------------------------------


def test_a_separating_hyperplane_is_the_certificate_and_no_lp_runs(monkeypatch):
    rows, signs = blobs()
    monkeypatch.setattr(separability, "linprog", lambda *a, **k: pytest.fail("an LP ran"))
    w = np.zeros(rows.shape[1])
    w[0] = 1.0
    verdict = decide(rows, signs, hyperplane=(w, -0.5))
    assert (verdict.verdict, verdict.form) == ("separable", "perceptron")
    assert verdict.certificate > 0 and verdict.check_seconds >= 0
    assert [(a.form, a.outcome) for a in verdict.attempts] == [("perceptron", "certified")]


def test_a_hyperplane_that_misses_one_sample_is_no_certificate():
    rows, signs = blobs()
    w = np.zeros(rows.shape[1])
    w[0] = 1.0
    # A bias that puts the positive sample closest to the boundary on the wrong side.
    closest = np.min(rows[signs > 0, 0])
    verdict = decide(rows, signs, hyperplane=(w, -closest - 1e-3), time_limit=30, logistic=False)
    assert verdict.attempts[0].outcome == "check failed"
    assert (verdict.verdict, verdict.form) == ("separable", "direct, cutting plane")


def test_a_margin_lost_to_rounding_is_not_trusted():
    # w.x + b = 1e-17 in exact arithmetic, far below the rounding error of the float64 dot product.
    rows = np.array([[1.0, 1.0], [0.0, 0.0]])
    margins, certified = separability.check_hyperplane(rows, np.array([1.0, -1.0]), np.array([1.0, -1.0]), 1e-17)
    assert not certified


def cloud_pair(n=400, features=30, overlap=False, seed=3):
    """Two clouds in [0, 1]^features: apart along a direction, or sharing a few samples (inseparable)."""
    rng = np.random.default_rng(seed)
    signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    direction = rng.uniform(-1, 1, features)
    rows = rng.uniform(0, 1, size=(n, features))
    score = rows @ direction
    threshold = np.median(score)
    signs = np.where(score > threshold, 1.0, -1.0)
    if overlap:
        # The mean of three positive samples joins the negatives: a point of both hulls.
        mean = rows[np.flatnonzero(signs > 0)[:3]].mean(axis=0)
        rows, signs = np.vstack([rows, mean]), np.append(signs, -1.0)
    return rows, signs


def test_cutting_plane_finds_a_separating_hyperplane_from_a_poor_start(monkeypatch):
    monkeypatch.setattr(separability, "CUT_FIRST", 40)
    monkeypatch.setattr(separability, "CUT_ADD", 40)
    rows, signs = cloud_pair()
    verdict = decide(rows, signs, time_limit=60, order=(), logistic=False)
    assert (verdict.verdict, verdict.form) == ("separable", "direct, cutting plane")
    assert "rounds" in verdict.attempts[-1].detail
    # The certificate is the smallest margin over all samples, checked here again.
    assert verdict.certificate > 0


def test_cutting_plane_proves_inseparability_with_a_hull_certificate(monkeypatch):
    monkeypatch.setattr(separability, "CUT_FIRST", 40)
    monkeypatch.setattr(separability, "CUT_ADD", 40)
    rows, signs = cloud_pair(overlap=True)
    verdict = decide(rows, signs, time_limit=60, order=(), logistic=False)
    assert (verdict.verdict, verdict.form) == ("inseparable", "hull, cutting plane")
    assert verdict.certificate <= separability.HULL_TOLERANCE
    # The full hull form agrees.
    assert decide(rows, signs, order=("hull",), cutting_plane=False).verdict == "inseparable"


def test_cutting_plane_matches_the_full_forms_on_random_sets():
    rng = np.random.default_rng(11)
    for trial in range(6):
        rows, signs = cloud_pair(n=120, features=8, overlap=bool(trial % 2), seed=trial)
        rows = np.round(rows * 255) / 255  # pixel-like
        fast = decide(rows, signs, time_limit=60, order=())
        cutting = decide(rows, signs, time_limit=60, order=(), logistic=False)
        full = decide(rows, signs, time_limit=60, cutting_plane=False,
                      order=("hull", "direct") if trial % 2 else ("direct", "hull"))
        assert fast.verdict == cutting.verdict == full.verdict != "undecided", (trial, fast, cutting, full)
    assert rng is not None


def test_hyperplane_is_passed_through_the_cache(tmp_path):
    rows, signs = blobs()
    w = np.zeros(rows.shape[1])
    w[0] = 1.0
    verdict = decide_cached(rows, signs, folder=tmp_path, hyperplane=(w, -0.5))
    assert verdict.form == "perceptron" and not verdict.cached
    again = decide_cached(rows, signs, folder=tmp_path)
    assert again.cached and again.form == "perceptron" and again.check_seconds == verdict.check_seconds


def test_a_nearly_separating_hyperplane_is_corrected_in_one_lp(monkeypatch):
    rows, signs = cloud_pair(n=400, features=30)
    # The true hyperplane, slightly tilted: a few samples on the wrong side.
    rng = np.random.default_rng(0)
    w, b = np.linalg.lstsq(np.c_[rows, np.ones(len(rows))], signs, rcond=None)[0][:-1], 0.0
    b = -float(np.median(rows @ w))
    w = w + rng.normal(0, 0.05 * np.abs(w).mean(), size=w.shape)
    margins = signs * (rows @ w + b)
    assert 0 < np.sum(margins <= 0) < 40
    verdict = decide(rows, signs, hyperplane=(w, b), nearly=True, time_limit=60, order=())
    assert (verdict.verdict, verdict.form) == ("separable", "direct, cutting plane")
    assert [a.form for a in verdict.attempts] == ["perceptron", "cutting plane, correcting the perceptron"]


def test_a_separating_hyperplane_from_the_continued_run_is_checked_first():
    rows, signs = blobs()
    good = np.zeros(rows.shape[1])
    good[0] = 1.0
    verdict = decide(rows, signs, hyperplane=(-good, 0.0), separating=(good, -0.5))
    assert (verdict.verdict, verdict.form) == ("separable", "perceptron")
    assert [(a.form, a.outcome) for a in verdict.attempts] == [("perceptron, continued", "certified")]


# --- the logistic route -----------------------------------------------------------------------------


def test_logistic_regression_stops_at_the_first_separating_iterate():
    rows, signs = cloud_pair(n=400, features=30)
    w, b, iterations = separability.logistic_hyperplane(rows, signs)
    assert np.all(signs * (rows @ w + b) > 0)
    assert 1 <= iterations < separability.LOGISTIC_ITERATIONS  # stopped early: the optimum is never reached
    # One iteration fewer does not separate yet: it stopped at the first that does.
    w, b, fewer = separability.logistic_hyperplane(rows, signs, iterations=iterations - 1)
    assert fewer == iterations - 1 and np.any(signs * (rows @ w + b) <= 0)


def test_a_separating_logistic_hyperplane_is_the_certificate_and_no_lp_runs(monkeypatch):
    rows, signs = cloud_pair(n=400, features=30)
    monkeypatch.setattr(separability, "linprog", lambda *a, **k: pytest.fail("an LP ran"))
    verdict = decide(rows, signs, order=())
    assert (verdict.verdict, verdict.form) == ("separable", "logistic")
    assert verdict.certificate > 0
    assert [(a.form, a.outcome) for a in verdict.attempts] == [("logistic", "certified")]


def test_an_inseparable_pair_gets_the_hull_form_on_the_samples_closest_to_the_logistic_hyperplane(monkeypatch):
    rows, signs = cloud_pair(overlap=True)
    monkeypatch.setattr(separability, "NEARLY_SEPARATED", 0.0)  # one sample of 401 beyond: not "nearly" here
    monkeypatch.setattr(separability, "HULL_CLOSEST", 60)
    verdict = decide(rows, signs, time_limit=60, order=())
    assert (verdict.verdict, verdict.form) == ("inseparable", "hull, closest samples")
    assert verdict.certificate <= separability.HULL_TOLERANCE
    assert [a.form for a in verdict.attempts] == ["logistic", "hull of the closest samples"]
    assert "60 samples closest" in verdict.attempts[-1].detail


def test_a_nearly_separating_logistic_hyperplane_is_corrected(monkeypatch):
    rows, signs = cloud_pair(n=400, features=30)
    # Two iterations and one more: a hyperplane with some samples still on the wrong side.
    monkeypatch.setattr(separability, "LOGISTIC_ITERATIONS", 2)
    monkeypatch.setattr(separability, "LOGISTIC_MORE", 1)
    monkeypatch.setattr(separability, "NEARLY_SEPARATED", 1.0)
    verdict = decide(rows, signs, time_limit=60, order=())
    assert verdict.attempts[0].form == "logistic" and verdict.attempts[0].outcome == "check failed"
    assert verdict.attempts[0].detail.startswith("3 L-BFGS iterations")
    assert (verdict.verdict, verdict.form) == ("separable", "direct, cutting plane")
    assert verdict.attempts[1].form == "cutting plane, correcting the logistic hyperplane"


def test_logistic_regression_continues_from_a_hyperplane_and_leaves_unused_pixels_at_zero():
    rows, signs = cloud_pair(n=400, features=30)
    rows[:, 5] = 0.0  # a pixel dark in every sample
    w, b, first = separability.logistic_hyperplane(rows, signs, iterations=2)
    assert first == 2 and w[5] == 0.0
    w, b, more = separability.logistic_hyperplane(rows, signs, start=(w, b))
    assert np.all(signs * (rows @ w + b) > 0) and w[5] == 0.0
    assert more < separability.LOGISTIC_ITERATIONS


def test_a_nearly_separating_logistic_hyperplane_gets_more_iterations_before_any_lp(monkeypatch):
    rows, signs = cloud_pair(n=400, features=30)
    monkeypatch.setattr(separability, "LOGISTIC_ITERATIONS", 2)
    monkeypatch.setattr(separability, "NEARLY_SEPARATED", 1.0)
    monkeypatch.setattr(separability, "linprog", lambda *a, **k: pytest.fail("an LP ran"))
    verdict = decide(rows, signs, time_limit=60, order=())
    assert (verdict.verdict, verdict.form) == ("separable", "logistic")
    assert int(verdict.attempts[0].detail.split()[0]) > 2


@pytest.mark.parametrize("overlap", [False, True])
def test_a_route_worked_out_ahead_gives_the_verdict_decide_gives(overlap, monkeypatch):
    rows, signs = cloud_pair(overlap=overlap)
    monkeypatch.setattr(separability, "NEARLY_SEPARATED", 0.0)
    monkeypatch.setattr(separability, "HULL_CLOSEST", 60)
    route = separability.logistic_route(rows, signs, time_limit=60)
    assert route.answer == ("inseparable" if overlap else "separable") and len(route.margins) == len(rows)
    # With the route given, decide runs none of it again: no logistic regression, no LP.
    monkeypatch.setattr(separability, "logistic_hyperplane", lambda *a, **k: pytest.fail("the route ran again"))
    monkeypatch.setattr(separability, "linprog", lambda *a, **k: pytest.fail("an LP ran"))
    given = decide(rows, signs, time_limit=60, order=(), route=route)
    assert (given.verdict, given.form, given.certificate) == (route.answer, route.form, route.certificate)
    assert [a.form for a in given.attempts] == [a.form for a in route.attempts]


def test_a_route_that_did_not_decide_leaves_its_margins_to_the_cutting_plane(monkeypatch):
    rows, signs = cloud_pair(overlap=True)
    monkeypatch.setattr(separability, "NEARLY_SEPARATED", 0.0)
    monkeypatch.setattr(separability, "HULL_CLOSEST", 3)  # too few samples to hold the shared point
    monkeypatch.setattr(separability, "CUT_FIRST", 40)
    monkeypatch.setattr(separability, "CUT_ADD", 40)
    route = separability.logistic_route(rows, signs, time_limit=60)
    assert route.answer is None
    verdict = decide(rows, signs, time_limit=60, order=(), route=route)
    assert (verdict.verdict, verdict.form) == ("inseparable", "hull, cutting plane")
    assert [a.form for a in verdict.attempts] == ["logistic", "hull of the closest samples", "cutting plane"]
