"""Exact linear separability of two classes, by linear programming (scipy's HiGHS).

Two classic forms, each good at proving one answer:

- **direct**: find ``w, b`` with ``y_i (w.x_i + b) >= 1`` for every sample. Feasible exactly when the
  classes are separable; its solution is a separating hyperplane. HiGHS finds one in seconds to a
  minute when it exists, but may run for very long on an inseparable pair.
- **hull**: find weights ``l_i >= 0`` summing to 1 within each class with ``sum_i s_i l_i x_i = 0``
  (``s_i = +-1`` by class), one row per pixel that is not constant over the pair. Feasible exactly
  when the two convex hulls intersect, i.e. the classes are NOT separable; its solution is a point of
  both hulls. HiGHS proves an intersection in about a minute, but struggles numerically on separable
  pairs.

Before either, two cheaper routes (:func:`decide` with ``hyperplane=``):

- **perceptron**: a hyperplane from elsewhere (the perceptron's; for one that converged with a few
  training errors left, the hyperplane its continued updates reached with none) is checked on every
  sample; if every margin is positive beyond rounding it is the certificate, and no LP runs.
- **logistic**: an L2-regularised logistic regression fitted by L-BFGS (scipy), stopped as soon as
  every sample is on its side. Its loss keeps pushing misclassified samples across, so on a separable
  pair it usually separates all of them within a hundred iterations (about 0.3 s for 12,000 MNIST
  images), where the perceptron's 1000 updates did not; its hyperplane is checked like the
  perceptron's. Where it still leaves samples on the wrong side, its margins rank the samples: the
  ones closest to or beyond it are where the two classes meet. If they are few (under
  ``NEARLY_SEPARATED`` of the set) the smallest correction LP below starts from it; if many, the pair
  is probably inseparable, and the hull form on the ``HULL_CLOSEST`` samples nearest its hyperplane
  usually finds the point both hulls share in a second or two. This route needs nothing but the set
  (:func:`logistic_route`), so it can be worked out ahead, while the perceptrons train.
- **cutting plane**: the margin-maximising LP (``max t`` with ``y_i (w.x_i + b) >= t`` and
  ``-1 <= w <= 1``) on a working set: the samples with the smallest margins under the starting
  hyperplane. Its answer is checked on every sample; the samples it gets wrong (the most violated
  first) join the working set and it is solved again, until none is violated ("separable") or the
  working set's optimum is ``t = 0``: the working set is then inseparable, and the hull form on the
  samples the LP's dual uses (a few hundred) gives the certificate for the whole set, since a point
  of both hulls of a subset lies in both hulls of the set. Each LP has a few hundred to a few
  thousand rows instead of one per sample. Where the starting hyperplane nearly separates (a converged
  perceptron), the first LP is instead the smallest correction of it that separates the working set,
  which keeps the samples outside the working set on their side: one or two rounds.

If neither decides within the time limit, the two full forms above run as before.

A solver's word is never taken alone. A verdict is given only with a certificate checked here in
float64: for "separable" every margin of the returned hyperplane must be positive by more than the
rounding error of computing it; for "inseparable" the two hull points (weights clipped to >= 0 and
renormalised, so they are exact convex combinations) must lie within ``HULL_TOLERANCE`` of each
other. An infeasibility report, a time limit or a failed check leaves the pair "undecided", with
every attempt kept in the verdict. Decided verdicts never change for the same data, so they are
cached on disk, one JSON file per data hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog, minimize
from scipy.special import expit, log_expit

Form = Literal["direct", "hull"]
FORMS: tuple[Form, ...] = ("direct", "hull")

#: Largest distance (Euclidean, pixels in [0, 1]) between the two hull points accepted as "they meet".
#: Far below the gap between the hulls of any pair found separable on MNIST (the thinnest, (1,2), has
#: a hyperplane with |w| = 4.6e4 at margin 1, so a gap of at least 2 / 4.6e4 = 4e-5), and far above
#: the float64 rounding of the check.
HULL_TOLERANCE = 1e-8
#: HiGHS's primal feasibility tolerance for the hull form (default 1e-7): tight enough for the check above.
HULL_FEASIBILITY = 1e-10
#: Bump when the forms or checks change, so that cached verdicts of an older version are not reused.
CACHE_VERSION = 1

_STATUS = {0: "feasible", 1: "limit reached", 2: "infeasible", 3: "unbounded", 4: "numerical difficulties"}


@dataclass(frozen=True)
class Attempt:
    """One solver run of one form."""

    form: str
    outcome: str
    """'certified', 'feasible, check failed', 'infeasible', 'limit reached', 'numerical difficulties'."""
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class SeparabilityVerdict:
    """Whether two classes are linearly separable, and how that was established."""

    verdict: Literal["separable", "inseparable", "undecided"]
    form: str
    """The form whose certificate decided it; '' when undecided."""
    seconds: float
    """Solver seconds over all attempts."""
    certificate: float | None = None
    """Smallest margin of the hyperplane (separable) or hull-point distance (inseparable)."""
    attempts: list[Attempt] = field(default_factory=list)
    cached: bool = False
    check_seconds: float = 0.0
    """Of ``seconds``, those spent checking certificates on every sample (the rest is solver time)."""

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SeparabilityVerdict":
        attempts = [Attempt(**attempt) for attempt in data.get("attempts", [])]
        return cls(**{**data, "attempts": attempts})


def decide(
    rows: np.ndarray,
    signs: np.ndarray,
    *,
    time_limit: float = 120.0,
    order: tuple[Form, ...] = FORMS,
    hyperplane: tuple[np.ndarray, float] | None = None,
    separating: tuple[np.ndarray, float] | None = None,
    nearly: bool = False,
    logistic: bool = True,
    cutting_plane: bool = True,
    route: LogisticRoute | None = None,
) -> SeparabilityVerdict:
    """Decide separability of ``rows`` (N, features) labelled ``signs`` in {-1, +1}.

    ``separating`` and ``hyperplane`` (each ``(w, b)``, e.g. a perceptron's) are checked first: one
    that separates every sample is the certificate. Otherwise (with ``cutting_plane``) the cutting-plane
    LPs start from the samples ``hyperplane`` puts closest to or beyond it (the class means' hyperplane
    without one): first, where it ``nearly`` separates (a converged perceptron), the smallest correction
    of it that separates the working set; then (with ``logistic``) the logistic hyperplane, and the LP
    its margins suggest (``route``, when :func:`logistic_route` has worked it out already); then the
    margin-maximising LP, together for at most ``time_limit`` seconds. Then the full forms in
    ``order``, each for at most ``time_limit`` seconds, until the first certified answer. Put "hull"
    first where inseparability is the likely answer: the direct form can spend its whole limit failing
    to prove it.
    """
    x = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    y = np.asarray(signs, dtype=np.float64)
    if not np.all(np.abs(y) == 1):
        raise ValueError("labels must be -1 or +1")
    if len(np.unique(y)) < 2:
        raise ValueError("need samples of both classes")
    attempts: list[Attempt] = []
    checks = _Clock()

    def verdict(answer: str, form: str, certificate: float | None) -> SeparabilityVerdict:
        return SeparabilityVerdict(answer, form, _total(attempts), certificate, attempts,
                                   check_seconds=round(checks.seconds, 3))

    margins = None
    for candidate, name in ((separating, "perceptron, continued"), (hyperplane, "perceptron")):
        if candidate is None:
            continue
        w, b = np.asarray(candidate[0], dtype=np.float64).reshape(-1), float(candidate[1])
        start = time.perf_counter()
        with checks:
            candidate_margins, certified = check_hyperplane(x, y, w, b)
        detail = (f"smallest margin {candidate_margins.min():.3g} "
                  f"({int(np.sum(candidate_margins <= 0))} samples on or beyond it)")
        attempts.append(Attempt(name, "certified" if certified else "check failed",
                                round(time.perf_counter() - start, 3), detail))
        if certified:
            return verdict("separable", "perceptron", float(candidate_margins.min()))
        if candidate is hyperplane:
            margins, start_plane = candidate_margins, (w, b)
    if cutting_plane:
        started = time.perf_counter()

        def left() -> float:
            return time_limit - (time.perf_counter() - started)

        if nearly and hyperplane is not None:
            answer, certificate, attempt = _cutting_plane(x, y, margins, time_limit / 2, checks,
                                                          _Correction(x, y, *start_plane))
            attempts.append(attempt)
            if answer is not None:
                return verdict(answer, "direct, cutting plane", certificate)
        if logistic:
            found = route if route is not None else _logistic_route(x, y, left())
            attempts += found.attempts
            checks.seconds += found.check_seconds
            margins = found.margins
            if found.answer is not None:
                return verdict(found.answer, found.form, found.certificate)
        if margins is None:  # no hyperplane given and no logistic one: start from the class means'
            start_plane = _means_hyperplane(x, y)
            margins = y * (x @ start_plane[0] + start_plane[1])
        answer, certificate, attempt = _cutting_plane(x, y, margins, left(), checks, _MaxMargin())
        attempts.append(attempt)
        if answer is not None:
            form = "hull" if answer == "inseparable" else "direct"
            return verdict(answer, f"{form}, cutting plane", certificate)
    for form in order:
        solve = {"direct": _direct, "hull": _hull}[form]
        answer, certificate, attempt = solve(x, y, time_limit)
        attempts.append(attempt)
        if answer is not None:
            return verdict(answer, form, certificate)
    return verdict("undecided", "", None)


def _total(attempts: list[Attempt]) -> float:
    return round(sum(attempt.seconds for attempt in attempts), 3)


def check_hyperplane(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: float) -> tuple[np.ndarray, bool]:
    """Every margin ``y_i (w.x_i + b)`` in float64, and whether each is positive beyond its rounding error.

    ``|fl(w.x + b) - (w.x + b)| <= (d + 1) * eps * (sum |w_j x_j| + |b|)`` (Higham's dot-product bound,
    whatever the summation order), so a margin above that bound is positive in exact arithmetic.
    """
    margins = y * (x @ w + b)
    magnitudes = x if x.min() >= 0 else np.abs(x)  # pixels are never negative: no copy of x
    rounding = (x.shape[1] + 1) * np.finfo(np.float64).eps * (magnitudes @ np.abs(w) + abs(b))
    return margins, bool(np.all(margins > rounding))


class _Clock:
    """Adds up the seconds spent inside ``with`` blocks."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._start


def _means_hyperplane(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """The hyperplane halfway between the class means, normal to their difference."""
    positive, negative = x[y > 0].mean(axis=0), x[y < 0].mean(axis=0)
    w = positive - negative
    return w, -float(w @ (positive + negative)) / 2


#: The logistic route: L-BFGS iterations at most (a separable MNIST pair needs 40 to 150), the L2
#: penalty (weak: only there to keep an inseparable pair's optimum finite), the share of samples left
#: on the wrong side under which the pair counts as nearly separated, and how many of the samples
#: closest to its hyperplane the hull form gets (an inseparable MNIST pair's hulls meet in about 480
#: samples; 1000 missed them for one pair of seven).
LOGISTIC_ITERATIONS = 150
#: Further iterations for a pair left nearly separated (two such MNIST pairs separate by 305 and 160).
LOGISTIC_MORE = 250
LOGISTIC_PENALTY = 1e-4
NEARLY_SEPARATED = 0.01
HULL_CLOSEST = 1500


def logistic_hyperplane(x: np.ndarray, y: np.ndarray, iterations: int = LOGISTIC_ITERATIONS,
                        penalty: float = LOGISTIC_PENALTY,
                        start: tuple[np.ndarray, float] | None = None) -> tuple[np.ndarray, float, int]:
    """``(w, b, iterations run)`` of logistic regression on ``x`` labelled ``y`` (+-1), by scipy's L-BFGS-B.

    Minimises ``sum_i log(1 + exp(-y_i (w.x_i + b))) + penalty / 2 |w|^2`` and stops at the first
    iterate that puts every sample on its side: that is all a certificate needs, and it comes long
    before the optimum. The products run in float32 (the hyperplane is only a candidate; it is checked
    in float64 afterwards). Hand-written rather than scikit-learn's ``LogisticRegression``, which cannot
    stop on that condition and runs all its iterations. ``start`` ``(w, b)`` continues from a hyperplane
    (L-BFGS's curvature memory starts afresh).

    Pixels that are zero in every sample are left out of the products: their gradient is the penalty's
    alone, so from zero their weights stay zero, and the iterates are those of the whole problem.
    """
    used = np.flatnonzero(np.any(x != 0, axis=0))
    rows, labels = x[:, used].astype(np.float32), y.astype(np.float32)
    features = len(used)
    initial = np.zeros(features + 1)
    if start is not None:
        initial[:features], initial[features] = np.asarray(start[0])[used], start[1]
    evaluated: dict[str, np.ndarray] = {}  # the last point evaluated, and its margins

    def margins_at(theta: np.ndarray) -> np.ndarray:
        return labels * (rows @ theta[:features].astype(np.float32) + np.float32(theta[features]))

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[:features].astype(np.float32)
        margins = margins_at(theta)
        evaluated.update(theta=theta.copy(), margins=margins)
        pull = -labels * expit(-margins)  # d loss / d score
        gradient = np.empty(features + 1)
        gradient[:features] = rows.T @ pull + penalty * w
        gradient[features] = pull.sum()
        return float(-log_expit(margins).sum() + 0.5 * penalty * float(w @ w)), gradient

    counted = [0]

    def stop_once_separating(intermediate_result: Any) -> None:
        counted[0] += 1
        theta = intermediate_result.x
        # The line search's last evaluation is normally the accepted iterate: its margins are at hand.
        margins = evaluated["margins"] if np.array_equal(theta, evaluated["theta"]) else margins_at(theta)
        if np.all(margins > 0):
            raise StopIteration

    result = minimize(loss_and_gradient, initial, jac=True, method="L-BFGS-B", callback=stop_once_separating,
                      options={"maxiter": iterations})
    w = np.zeros(x.shape[1])
    w[used] = result.x[:features]
    return w, float(result.x[features]), counted[0]


def _hull_of_closest(x: np.ndarray, y: np.ndarray, margins: np.ndarray, time_limit: float):
    """The hull form on the ``HULL_CLOSEST`` samples with the smallest ``margins`` (a certificate for the whole
    set when they are inseparable: a point of both hulls of a subset lies in both hulls of the set)."""
    closest = np.argsort(margins, kind="stable")[:HULL_CLOSEST]
    start = time.perf_counter()
    answer, certificate, attempt = _hull(x[closest], y[closest], max(time_limit, 1.0))
    detail = f"hull form on the {len(closest)} samples closest to the logistic hyperplane: {attempt.detail}"
    return answer, certificate, Attempt("hull of the closest samples", attempt.outcome,
                                        round(time.perf_counter() - start, 3), detail)


@dataclass(frozen=True)
class LogisticRoute:
    """What the logistic route (:func:`logistic_route`) found for one set. It needs nothing but the set,
    so it can be worked out ahead, while the perceptrons still train, and handed to :func:`decide`."""

    answer: Literal["separable", "inseparable"] | None
    """None when it did not decide: the margin-maximising LP goes on from ``margins``."""
    form: str
    certificate: float | None
    attempts: list[Attempt]
    margins: np.ndarray
    """Every sample's margin under the logistic hyperplane."""
    check_seconds: float


def logistic_route(rows: np.ndarray, signs: np.ndarray, *, time_limit: float = 120.0) -> LogisticRoute:
    """The logistic route of :func:`decide` for ``rows`` labelled ``signs`` (+-1), on its own."""
    x = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    return _logistic_route(x, np.asarray(signs, dtype=np.float64), time_limit)


def _logistic_route(x: np.ndarray, y: np.ndarray, time_limit: float) -> LogisticRoute:
    """The logistic hyperplane (with more iterations where it nearly separates), then where it leaves
    samples on the wrong side the LP its margins suggest: the correction of it when they are few, the
    hull form on the samples closest to it when they are many."""
    started = time.perf_counter()
    checks = _Clock()
    w, b, iterations = logistic_hyperplane(x, y, LOGISTIC_ITERATIONS)
    with checks:
        margins, certified = check_hyperplane(x, y, w, b)
    beyond = int(np.sum(margins <= 0))
    if not certified and beyond < NEARLY_SEPARATED * len(x):
        # Nearly there: the loss still pulls the last few samples across, cheaper than an LP.
        w, b, more = logistic_hyperplane(x, y, LOGISTIC_MORE, start=(w, b))
        iterations += more
        with checks:
            margins, certified = check_hyperplane(x, y, w, b)
        beyond = int(np.sum(margins <= 0))
    attempts = [Attempt("logistic", "certified" if certified else "check failed",
                        round(time.perf_counter() - started, 3),
                        f"{iterations} L-BFGS iterations; smallest margin {margins.min():.3g} "
                        f"({beyond} samples on or beyond it)")]

    def route(answer: str | None, form: str, certificate: float | None) -> LogisticRoute:
        return LogisticRoute(answer, form, certificate, attempts, margins, round(checks.seconds, 3))

    if certified:
        return route("separable", "logistic", float(margins.min()))
    left = time_limit - (time.perf_counter() - started)
    if beyond < NEARLY_SEPARATED * len(x):
        correction = _Correction(x, y, w, b, "the logistic hyperplane")
        answer, certificate, attempt = _cutting_plane(x, y, margins, left / 2, checks, correction)
        form = "direct, cutting plane"
    else:
        answer, certificate, attempt = _hull_of_closest(x, y, margins, left / 2)
        form = "hull, closest samples"
    attempts.append(attempt)
    return route(answer, form, certificate)


#: Cutting plane: the first working set, and how many of the most violated samples join it per round.
CUT_FIRST = 600
CUT_ADD = 600
#: Below this optimum ``t`` (margins with |w| <= 1 per pixel in [0, 1]) the working set counts as inseparable.
CUT_ZERO = 1e-9


class _MaxMargin:
    """max t s.t. y_i (w.x_i + b) >= t, -1 <= w <= 1, t <= 1 (variables w, b, t) on the working set.

    Always feasible; an optimum t <= CUT_ZERO means the working set is inseparable, and the samples
    with a nonzero dual value are where its hulls meet.
    """

    name = "cutting plane"

    def __call__(self, x: np.ndarray, y: np.ndarray, time_limit: float):
        n, d = x.shape
        a_ub = sp.hstack([sp.csr_matrix(-y[:, None] * x), sp.csr_matrix(-y[:, None]), sp.csr_matrix(np.ones((n, 1)))],
                         format="csr")
        objective = np.zeros(d + 2)
        objective[-1] = -1.0
        result = linprog(objective, A_ub=a_ub, b_ub=np.zeros(n), bounds=[(-1, 1)] * d + [(None, None), (None, 1)],
                         method="highs-ipm", options={"time_limit": float(max(time_limit, 1.0))})
        if result.status != 0 or result.x is None:
            return "failed", result
        if float(result.x[-1]) <= CUT_ZERO:
            marginals = getattr(getattr(result, "ineqlin", None), "marginals", None)
            return "inseparable", None if marginals is None else -np.asarray(marginals) > 0
        return "hyperplane", (result.x[:-2], float(result.x[-2]))


class _Correction:
    """The smallest change (in |.|_1) of a given hyperplane that separates the working set with margin 1.

    ``y_i (s p_i + d.x_i + b) >= 1`` with ``p_i`` the given hyperplane's scores scaled to [-1, 1], ``s >= 0``
    and ``b`` free, minimising ``|d|_1``: where the hyperplane nearly separates, the correction stays small
    and the samples outside the working set keep their side. Infeasible where the working set is not
    separable: then the margin-maximising LP takes over.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, w: np.ndarray, b: float, of: str = "the perceptron"):
        self.name = f"cutting plane, correcting {of}"
        scores = x @ w + b
        self.scale = float(np.abs(scores).max()) or 1.0
        self.scores = scores / self.scale
        self.w, self.b = w, b

    def __call__(self, x: np.ndarray, y: np.ndarray, time_limit: float, working: np.ndarray):
        n, d = x.shape
        signs = y[:, None]
        a_ub = sp.hstack([sp.csr_matrix(-signs * self.scores[working][:, None]), sp.csr_matrix(-signs),
                          sp.csr_matrix(-signs * x), sp.csr_matrix(signs * x)], format="csr")
        objective = np.concatenate([[0.0, 0.0], np.ones(2 * d)])
        result = linprog(objective, A_ub=a_ub, b_ub=-np.ones(n), bounds=[(0, None), (None, None)] + [(0, None)] * (2 * d),
                         method="highs", options={"time_limit": float(max(time_limit, 1.0))})
        if result.status != 0 or result.x is None:
            return "failed", result
        return "correction", (float(result.x[0]), float(result.x[1]), result.x[2:2 + d] - result.x[2 + d:])


def _cutting_plane(x: np.ndarray, y: np.ndarray, margins: np.ndarray, time_limit: float, checks: _Clock, solve):
    """The cutting-plane scheme of the module notes with the LP ``solve``, from the samples with the smallest ``margins``."""
    start = time.perf_counter()
    used = np.flatnonzero(np.any(x != 0, axis=0))
    reduced = x[:, used]
    order = np.argsort(margins, kind="stable")
    working = np.sort(order[:CUT_FIRST])
    rounds = 0
    outcome, detail = "limit reached", ""
    while True:
        spent = time.perf_counter() - start
        if spent >= time_limit:
            break
        if len(np.unique(y[working])) < 2:  # one class only: take the other's closest samples too
            other = order[y[order] != y[working[0]]][:CUT_ADD]
            working = np.union1d(working, other)
        rounds += 1
        if isinstance(solve, _Correction):
            kind, found = solve(reduced[working], y[working], time_limit - spent, working)
        else:
            kind, found = solve(reduced[working], y[working], time_limit - spent)
        if kind == "failed":
            outcome = _STATUS.get(found.status, str(found.status))
            detail = f"round {rounds}, {len(working)} samples: {found.message}"
            break
        if kind == "inseparable":
            # The working set is inseparable: the hull form on the samples its dual uses, else on all of it.
            supports = [working] if found is None else [working[found], working]
            for support in supports:
                answer, certificate, attempt = _hull(x[support], y[support], max(time_limit - spent, 1.0))
                if answer is not None:
                    detail = (f"{rounds} rounds, last {len(working)} samples; hull form on {len(support)} of them: "
                              f"{attempt.detail}")
                    return answer, certificate, Attempt(solve.name, "certified", round(time.perf_counter() - start, 3),
                                                        detail)
            outcome, detail = "feasible, check failed", f"round {rounds}: optimum 0 but no hull certificate"
            break
        w = np.zeros(x.shape[1])
        if kind == "correction":
            scale, shift, change = found
            w = solve.w * (scale / solve.scale)
            w[used] += change
            b = solve.b * scale / solve.scale + shift
        else:
            w[used], b = found
        with checks:
            margins, certified = check_hyperplane(x, y, w, b)
        if certified:
            detail = f"{rounds} rounds, last {len(working)} samples; smallest margin {margins.min():.3g}"
            return "separable", float(margins.min()), Attempt(solve.name, "certified",
                                                              round(time.perf_counter() - start, 3), detail)
        candidates = np.argsort(margins, kind="stable")
        fresh = candidates[~np.isin(candidates, working)][:CUT_ADD]
        if len(fresh) == 0:
            outcome, detail = "feasible, check failed", f"round {rounds}: every sample already in the working set"
            break
        working = np.union1d(working, fresh)
    return None, None, Attempt(solve.name, outcome, round(time.perf_counter() - start, 3),
                               detail or f"{rounds} rounds, {len(working)} samples")


def _direct(x: np.ndarray, y: np.ndarray, time_limit: float):
    n, d = x.shape
    # Rows -y_i [x_i, 1] . [w, b] <= -1; pixels that are zero everywhere are dropped, their w is free.
    used = np.flatnonzero(np.any(x != 0, axis=0))
    augmented = sp.hstack([sp.csr_matrix(x[:, used]), sp.csr_matrix(np.ones((n, 1)))], format="csr")
    a_ub = -sp.diags(y) @ augmented
    spent = 0.0
    for objective in ("none", "l1"):
        start = time.perf_counter()
        if objective == "none":
            # A pure feasibility problem: the fastest way to a separating hyperplane when one exists.
            result = linprog(np.zeros(len(used) + 1), A_ub=a_ub, b_ub=-np.ones(n), bounds=(None, None),
                             method="highs", options={"time_limit": float(time_limit), "presolve": True})
            solution = result.x
        else:
            # With fewer samples than pixels the feasibility vertex can have |w| ~ 1e20 and margins lost
            # to rounding; minimising |w|_1 (w = p - q, p, q >= 0) picks a well-scaled hyperplane instead.
            k = len(used)
            split = sp.hstack([a_ub[:, :k], -a_ub[:, :k], a_ub[:, k:]], format="csr")
            result = linprog(np.concatenate([np.ones(2 * k), [0.0]]), A_ub=split, b_ub=-np.ones(n),
                             bounds=[(0, None)] * (2 * k) + [(None, None)], method="highs",
                             options={"time_limit": float(max(time_limit - spent, 1.0)), "presolve": True})
            solution = None if result.x is None else np.concatenate([result.x[:k] - result.x[k:2 * k], result.x[-1:]])
        seconds = time.perf_counter() - start
        spent += seconds
        form = "direct" if objective == "none" else "direct, min |w|_1"
        if result.status != 0:
            return None, None, Attempt(form, _STATUS.get(result.status, str(result.status)), round(spent, 3),
                                       result.message)
        w = np.zeros(d)
        w[used] = solution[:-1]
        b = float(solution[-1])
        margins, certified = check_hyperplane(x, y, w, b)
        smallest = float(margins.min())
        detail = f"smallest margin {smallest:.3g}, |w| {np.linalg.norm(w):.3g}"
        if certified:
            return "separable", smallest, Attempt(form, "certified", round(spent, 3), detail)
        if spent >= time_limit:
            break
    return None, None, Attempt(form, "feasible, check failed", round(spent, 3), detail)


def _hull(x: np.ndarray, y: np.ndarray, time_limit: float):
    n, _ = x.shape
    positive = y > 0
    # A pixel constant over the pair gives c * (sum l+ - sum l-) = 0, implied by the two sum rows.
    varying = np.flatnonzero(x.max(axis=0) != x.min(axis=0))
    pixel_rows = sp.csr_matrix((x[:, varying] * y[:, None]).T)
    sums = sp.csr_matrix(np.vstack([positive, ~positive]).astype(np.float64))
    a_eq = sp.vstack([pixel_rows, sums], format="csr")
    b_eq = np.concatenate([np.zeros(len(varying)), [1.0, 1.0]])
    start = time.perf_counter()
    result = linprog(
        np.zeros(n), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs",
        options={"time_limit": float(time_limit), "presolve": True,
                 "primal_feasibility_tolerance": HULL_FEASIBILITY},
    )
    seconds = round(time.perf_counter() - start, 3)
    if result.status != 0:
        return None, None, Attempt("hull", _STATUS.get(result.status, str(result.status)), seconds, result.message)
    weights = np.clip(result.x, 0.0, None)
    point_pos = weights[positive] @ x[positive] / weights[positive].sum()
    point_neg = weights[~positive] @ x[~positive] / weights[~positive].sum()
    distance = float(np.linalg.norm(point_pos - point_neg))
    support = int(np.count_nonzero(weights))
    detail = f"hull points {distance:.3g} apart, {support} samples in the combination"
    if not distance <= HULL_TOLERANCE:
        return None, None, Attempt("hull", "feasible, check failed", seconds, detail)
    return "inseparable", distance, Attempt("hull", "certified", seconds, detail)


# --- cache ----------------------------------------------------------------------------------------


def data_hash(rows: np.ndarray, signs: np.ndarray) -> str:
    """Identifies a labelled set: SHA-256 of its float32 rows and labels, in order."""
    digest = hashlib.sha256()
    for array in (np.asarray(rows, dtype=np.float32), np.asarray(signs, dtype=np.float32)):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).data)  # the buffer itself: no copy of 40 MB per pair
    return digest.hexdigest()[:24]


def cache_dir() -> Path:
    """Where verdicts are kept: ``separability/`` in the harness cache (``$HARNESS_DATA`` or ~/.cache/harness)."""
    from harness.data import data_dir

    return data_dir() / "separability"


def decide_cached(
    rows: np.ndarray,
    signs: np.ndarray,
    *,
    time_limit: float = 120.0,
    order: tuple[Form, ...] = FORMS,
    label: str = "",
    folder: Path | None = None,
    hyperplane: tuple[np.ndarray, float] | None = None,
    separating: tuple[np.ndarray, float] | None = None,
    nearly: bool = False,
    route: LogisticRoute | None = None,
) -> SeparabilityVerdict:
    """:func:`decide`, reading and writing the on-disk cache; ``label`` (e.g. "mnist 2,3") is stored for readers.

    A cached verdict is certified data of the same hash, whichever route decided it.

    Only decided verdicts are cached: an undecided one may be decided with a longer time limit. One
    file per data hash, replaced atomically, so concurrent cells never lose each other's verdicts.
    """
    folder = folder or cache_dir()
    key = data_hash(rows, signs)
    path = folder / f"{key}.json"
    try:
        stored = json.loads(path.read_text())
        if stored.get("version") == CACHE_VERSION:
            return SeparabilityVerdict.from_dict({**stored["verdict"], "cached": True})
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing or unreadable: decide again and overwrite
    verdict = decide(rows, signs, time_limit=time_limit, order=order, hyperplane=hyperplane, separating=separating,
                     nearly=nearly, route=route)
    if verdict.verdict != "undecided":
        try:
            _write_atomically(path, {"version": CACHE_VERSION, "label": label, "verdict": verdict.as_dict()})
        except OSError:
            pass  # a read-only (or full) dataset cache: the verdict stands, it is only decided again next time
    return verdict


def _write_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(data, stream, indent=1)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
