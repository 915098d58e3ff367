"""The drift check: the last N nights together against the pooled baseline.

One night is judged alone by the gate (:mod:`harness.compare.comparison`): a slowdown of 3 % a night
stays inside one night's noise every night and is never confirmed, though a week of it adds up to
19 %. Here the nights of a window are judged together. Per comparison row and gated metric, each
night's change from the pooled baseline (its timings put on the baseline's scale by the calibration,
as the gate does) is fitted with a straight line over the nights' dates, and the row is flagged as
drifting when both hold:

- the slope points the worse way with a one-sided p-value below the suite's ``alpha`` (a steady
  trend, not one odd night: a single slow night is the gate's business), its noise pooled from the
  line's residuals and the baseline runs' spread, and
- the line's level at the newest night is beyond the metric's threshold (the same ``train_seconds:+10%``
  as the gate's): a trend too small to matter is not reported, however steady. This is also what keeps
  same-code nights quiet: with nights varying by 5 % from run to run, the fitted level of a week of
  them lies within about 3 % of the baseline, so reaching 10 % by chance is rarer than one in 10^3.

Changes are logarithms of the ratio for relative thresholds (timings multiply) and differences for
absolute ones (accuracy in points). Nights whose timings are not comparable with the baseline (the
calibration's factor out of range) are left out of the timing fits.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from harness.compare.comparison import time_scale
from harness.compare.results import RunResults, Side
from harness.thresholds import Threshold, is_timing, parse_thresholds

#: Nights a window holds unless told otherwise (a week).
DEFAULT_NIGHTS = 7
#: Fewer nights than this fit no line worth testing.
MIN_NIGHTS = 3


@dataclass(frozen=True)
class Trend:
    """One row's metric over the window's nights: the fitted line and its verdict."""

    row: str
    metric: str
    nights: int
    #: The fitted change from the baseline per day, and at the newest night (percent for relative
    #: thresholds, metric units for absolute ones).
    per_day: float
    at_newest: float
    unit: str
    p_value: float
    threshold: str
    drifting: bool

    @property
    def message(self) -> str:
        return (f"{self.row}: {self.metric} drifting {self.per_day:+.2f}{self.unit} a day over {self.nights} "
                f"nights, now {self.at_newest:+.1f}{self.unit} from the baseline (limit {self.threshold}, "
                f"p={self.p_value:.2g})")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


def night_value(cells: Side, metric: str) -> float | None:
    """A night's value of a row: the median for timings (skewed), the mean otherwise."""
    values = cells.sample(metric)
    if not values:
        return None
    return statistics.median(values) if is_timing(metric) else statistics.fmean(values)


def baseline_values(cells: Side, threshold: Threshold) -> list[float]:
    """The baseline on the scale changes are measured in: the log of each run's median (relative), or
    every value (absolute). Their mean is the level nights are measured from, their spread the noise."""
    if threshold.relative:
        return [math.log(v) for v in cells.run_medians(threshold.metric) if v > 0]
    return list(cells.sample(threshold.metric))


def fit(xs: list[float], ys: list[float], baseline: list[float] = ()) -> tuple[float, float, float, int]:
    """Least squares line: (intercept, slope, standard error of the slope, its degrees of freedom).

    The noise is pooled from the line's residuals and the baseline runs' spread around their mean
    (the same code measured again): with a week of nights alone the error rests on 5 degrees of
    freedom, and the heavy tails of Student's t would miss many real drifts."""
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sxx
    intercept = mean_y - slope * mean_x
    squares = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    freedom = len(xs) - 2
    if len(baseline) > 1:
        squares += sum((v - statistics.fmean(baseline)) ** 2 for v in baseline)
        freedom += len(baseline) - 1
    return intercept, slope, math.sqrt(squares / freedom / sxx), freedom


def slope_p_value(slope: float, error: float, worse: int, freedom: int) -> float:
    """One-sided p-value that the true slope points the ``worse`` way (Student's t)."""
    moved = slope * worse
    if error == 0:
        return 0.0 if moved > 0 else 1.0
    from scipy.stats import t

    return float(t.sf(moved / error, freedom))


def days(created: str) -> float:
    return datetime.fromisoformat(created).timestamp() / 86400


def check(baseline: RunResults, nights: list[RunResults], fail: str | None = None,
          alpha: float | None = None) -> list[Trend]:
    """Every row x gated metric's trend over ``nights`` (oldest first) against ``baseline``; those with
    ``drifting`` set are the findings. Empty with fewer than :data:`MIN_NIGHTS` nights."""
    if len(nights) < MIN_NIGHTS:
        return []
    settings = nights[-1].settings()
    alpha = settings.alpha if alpha is None else alpha
    thresholds = parse_thresholds(fail or "", parse_thresholds(settings.fail))
    scales = [time_scale(baseline, night, settings.normalize) for night in nights]
    series: list[tuple[str, Threshold, list[float], list[float], list[float]]] = []
    for row, cells in baseline.rows().items():
        for threshold in thresholds:
            before = baseline_values(Side(tuple(cells)), threshold)
            if not before:
                continue
            level = statistics.fmean(before)
            xs, ys = [], []
            for night, scale in zip(nights, scales):
                if is_timing(threshold.metric) and scale.not_comparable:
                    continue
                factor = scale.factor if is_timing(threshold.metric) else 1.0
                value = night_value(Side(tuple(night.rows().get(row, ())), factor), threshold.metric)
                if value is None or (threshold.relative and value <= 0):
                    continue
                xs.append(days(night.created))
                ys.append(math.log(value) - level if threshold.relative else value - level)
            if len(xs) >= MIN_NIGHTS and len(set(xs)) > 1:
                series.append((row, threshold, xs, ys, [v - level for v in before]))
    trends = []
    for row, threshold, xs, ys, before in series:
        intercept, slope, error, freedom = fit(xs, ys, before)
        newest = intercept + slope * max(xs)
        p_value = slope_p_value(slope, error, threshold.worse, freedom)
        if threshold.relative:
            per_day, at_newest, unit = 100 * math.expm1(slope), 100 * math.expm1(newest), " %"
        else:
            per_day, at_newest, unit = slope, newest, ""
        beyond = at_newest * threshold.worse > threshold.limit
        trends.append(Trend(row, threshold.metric, len(xs), per_day, at_newest, unit, p_value, str(threshold),
                            drifting=beyond and p_value < alpha))
    return trends
