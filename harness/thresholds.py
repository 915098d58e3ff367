"""What a metric is (which way is better, its unit, whether it is a timing) and how a threshold on
it is written: the facts both the suite's ``[regression]`` table and the comparison need.

    test_accuracy:-0.5     accuracy may not drop by more than 0.5 percentage points
    train_seconds:+10%     training time may not grow by more than 10 percent

The sign says which way is worse, and must agree with the metric's direction, so a threshold can
never silently guard the wrong side. A leaf module: it imports nothing of the harness but its errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from harness.errors import UserError

DEFAULT_FAIL = "test_accuracy:-1.0,train_seconds:+10%"


def direction(metric: str) -> int:
    """+1 if higher is better, -1 if lower is better, 0 if unknown."""
    name = metric.lower()
    if any(word in name for word in ("accuracy", "precision", "recall", "f1", "explained_variance")):
        return 1
    if any(word in name for word in ("seconds", "loss", "error_rate", "time")):
        return -1
    return 0


def is_timing(metric: str) -> bool:
    """Timings are scaled by the calibration and judged with a rank test."""
    return "seconds" in metric.lower()


def unit(metric: str) -> str:
    """The unit of a record column, for column labels."""
    name = metric.lower()
    if "accuracy" in name:
        return "%"
    if "seconds" in name:
        return "s"
    return ""


@dataclass(frozen=True)
class Threshold:
    """A metric may not move in the ``worse`` direction (+1: up) by more than ``limit``: absolute
    units, or percent when ``relative``."""

    metric: str
    limit: float
    worse: int
    relative: bool

    def __str__(self) -> str:
        sign = "+" if self.worse > 0 else "-"
        return f"{self.metric}:{sign}{self.limit:g}{'%' if self.relative else ''}"


_THRESHOLD = re.compile(r"^(?P<metric>[A-Za-z_][A-Za-z0-9_]*):(?P<sign>[+-])(?P<number>\d+(\.\d*)?|\.\d+)(?P<pct>%?)$")


def parse_threshold(text: str) -> Threshold:
    """One threshold, ``metric:-N`` or ``metric:+N%``; a UserError says what is wrong with it."""
    match = _THRESHOLD.match(text.strip())
    if match is None:
        raise UserError(
            f"bad threshold {text.strip()[:80]!r}: expected METRIC:-N (absolute drop) or METRIC:+N% (relative "
            "growth), e.g. test_accuracy:-0.5 or train_seconds:+10%"
        )
    metric, worse = match["metric"], 1 if match["sign"] == "+" else -1
    expected = direction(metric)
    if expected and worse == expected:
        better = "higher" if expected > 0 else "lower"
        sign = "-" if expected > 0 else "+"
        raise UserError(
            f"threshold {text.strip()!r} guards the wrong side: {better} {metric} is better, "
            f"so a regression is {sign}: write {metric}:{sign}{match['number']}{match['pct']}"
        )
    return Threshold(metric, float(match["number"]), worse, bool(match["pct"]))


def parse_thresholds(text: str, base: Iterable[Threshold] = ()) -> list[Threshold]:
    """Comma-separated thresholds; a metric named in ``text`` replaces its threshold in ``base``."""
    parsed = [parse_threshold(part) for part in text.split(",") if part.strip()]
    named = {threshold.metric for threshold in parsed}
    return [threshold for threshold in base if threshold.metric not in named] + parsed
