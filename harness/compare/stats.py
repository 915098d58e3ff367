"""Statistics of repeated measurements: summaries, and the one-sided tests that say whether a change
stands out of the noise (timings: Mann-Whitney U within runs, being skewed and outlier-prone, and
Student's t over runs; other metrics, accuracy over seeds: Welch's t-test)."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Iterable


@dataclass(frozen=True)
class SampleStats:
    """Summary statistics of repeated measurements of one metric (the fields pytest-benchmark reports)."""

    rounds: int
    min: float
    max: float
    mean: float
    stddev: float
    median: float
    q1: float
    q3: float

    @classmethod
    def of(cls, values: Iterable[float]) -> "SampleStats":
        data = sorted(float(v) for v in values)
        if not data:
            raise ValueError("no values")
        q1, _, q3 = statistics.quantiles(data, n=4, method="inclusive") if len(data) > 1 else (data[0],) * 3
        return cls(
            rounds=len(data),
            min=data[0],
            max=data[-1],
            mean=statistics.fmean(data),
            stddev=statistics.stdev(data) if len(data) > 1 else 0.0,
            median=statistics.median(data),
            q1=q1,
            q3=q3,
        )

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "iqr": self.iqr}


def rank_test(current: tuple[float, ...], baseline: tuple[float, ...], worse: int) -> float | None:
    """One-sided Mann-Whitney U p-value that ``current`` is shifted in the ``worse`` direction
    (+1: larger), or None when a side has a single value."""
    if len(current) < 2 or len(baseline) < 2:
        return None
    from scipy.stats import mannwhitneyu

    alternative = "greater" if worse > 0 else "less"
    return float(mannwhitneyu(current, baseline, alternative=alternative).pvalue)


def mean_test(current: tuple[float, ...], baseline: tuple[float, ...], worse: int) -> float | None:
    """One-sided Welch t-test p-value that the mean of ``current`` moved in the ``worse`` direction,
    or None when a side has a single value. Two sides without spread (same seeds, deterministic
    training) differ for certain when their means differ."""
    if len(current) < 2 or len(baseline) < 2:
        return None
    if statistics.pstdev(current) == 0 and statistics.pstdev(baseline) == 0:
        moved = (statistics.fmean(current) - statistics.fmean(baseline)) * worse
        return 0.0 if moved > 0 else 1.0
    from scipy.stats import ttest_ind

    alternative = "greater" if worse > 0 else "less"
    return float(ttest_ind(current, baseline, equal_var=False, alternative=alternative).pvalue)


def run_test(current: tuple[float, ...], baseline: tuple[float, ...], worse: int) -> float | None:
    """One-sided p-value that the runs of ``current`` moved in the ``worse`` direction from the runs
    of ``baseline``, each value one run's median timing; None with fewer than three runs in all.

    Runs, not the epochs inside them, are the samples here: a process's epochs share its memory
    layout, thread placement and the machine's state at the time, so they vary less among themselves
    than runs do (pyperf spreads a benchmark over many processes for the same reason). Timings
    multiply, so the test is Student's t on their logarithms, the variance pooled over both sides,
    which also works with a single current run against a baseline of several (a prediction test)."""
    runs = len(current) + len(baseline)
    if not current or not baseline or runs < 3 or min(current + baseline) <= 0:
        return None
    now, before = [math.log(v) for v in current], [math.log(v) for v in baseline]
    moved = (statistics.fmean(now) - statistics.fmean(before)) * worse
    # By hand, not scipy's ttest_ind: with one run on a side its variance is undefined and scipy gives
    # nan, though the variance pooled over both sides is not.
    squares = sum((v - statistics.fmean(side)) ** 2 for side in (now, before) for v in side)
    if squares == 0:
        return 0.0 if moved > 0 else 1.0
    from scipy.stats import t

    error = math.sqrt(squares / (runs - 2) * (1 / len(now) + 1 / len(before)))
    return float(t.sf(moved / error, runs - 2))
