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
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

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
class Verdict:
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

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Verdict":
        attempts = [Attempt(**attempt) for attempt in data.get("attempts", [])]
        return cls(**{**data, "attempts": attempts})


def decide(
    rows: np.ndarray,
    signs: np.ndarray,
    *,
    time_limit: float = 120.0,
    order: tuple[Form, ...] = FORMS,
) -> Verdict:
    """Decide separability of ``rows`` (N, features) labelled ``signs`` in {-1, +1}.

    Tries the forms in ``order``, each for at most ``time_limit`` seconds, and stops at the first
    certified answer. Put "hull" first where inseparability is the likely answer: the direct form
    can spend its whole limit failing to prove it.
    """
    x = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    y = np.asarray(signs, dtype=np.float64)
    if not np.all(np.abs(y) == 1):
        raise ValueError("labels must be -1 or +1")
    if len(np.unique(y)) < 2:
        raise ValueError("need samples of both classes")
    attempts: list[Attempt] = []
    for form in order:
        solve = {"direct": _direct, "hull": _hull}[form]
        verdict, certificate, attempt = solve(x, y, time_limit)
        attempts.append(attempt)
        if verdict is not None:
            return Verdict(verdict, form, _total(attempts), certificate, attempts)
    return Verdict("undecided", "", _total(attempts), None, attempts)


def _total(attempts: list[Attempt]) -> float:
    return round(sum(attempt.seconds for attempt in attempts), 3)


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
        margins = y * (x @ w + b)
        # |fl(w.x + b) - (w.x + b)| <= (d + 1) * eps * (sum |w_j x_j| + |b|) (Higham, dot-product bound).
        rounding = (d + 1) * np.finfo(np.float64).eps * (np.abs(x) @ np.abs(w) + abs(b))
        smallest = float(margins.min())
        detail = f"smallest margin {smallest:.3g}, |w| {np.linalg.norm(w):.3g}"
        if bool(np.all(margins > rounding)):
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
        digest.update(np.ascontiguousarray(array).tobytes())
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
) -> Verdict:
    """:func:`decide`, reading and writing the on-disk cache; ``label`` (e.g. "mnist 2,3") is stored for readers.

    Only decided verdicts are cached: an undecided one may be decided with a longer time limit. One
    file per data hash, replaced atomically, so concurrent cells never lose each other's verdicts.
    """
    folder = folder or cache_dir()
    key = data_hash(rows, signs)
    path = folder / f"{key}.json"
    try:
        stored = json.loads(path.read_text())
        if stored.get("version") == CACHE_VERSION:
            return Verdict.from_dict({**stored["verdict"], "cached": True})
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing or unreadable: decide again and overwrite
    verdict = decide(rows, signs, time_limit=time_limit, order=order)
    if verdict.verdict != "undecided":
        _write_atomically(path, {"version": CACHE_VERSION, "label": label, "verdict": verdict.as_dict()})
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
