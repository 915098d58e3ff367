"""How one number of the report is judged against ours: the labels, the seed rules and the chance rule.

- Like against like first: a run whose settings differ from the report's judges nothing
  (:data:`SETTINGS_DIFFER`; :mod:`harness.study.settings` names the settings).
- Over seeds: ours is the mean over every seed of the run. With 3 or more seeds the verdict is
  :data:`REPRODUCED` when the mean lies within the tolerance of the report's number,
  :data:`WITHIN_NOISE` when it does not but the report's number lies within the 95 % prediction
  interval of one run of ours (the report gives one run: a single draw of the seed noise), else
  :data:`NOT_REPRODUCED`. With 1 or 2 seeds the seed noise is unknown: the verdict is within the
  tolerance or not, and says how many seeds it rests on ("reproduced (1 seed)").
- Chance: a quantity the report's own setting leaves untrained is judged against chance, never against
  the tolerance: an untrained head's accuracy is whatever its initial weights happen to give, so the
  question is only whether a side learned something. A side is no better than chance when it is at most
  what always guessing the most common class scores, with the top of that share's binomial 95 %
  interval for the side's test-set size; over 3 or more seeds, when our mean's 95 % interval reaches
  that far down (one untrained head scores above it by luck, the seeds show it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean, stdev

REPRODUCED, WITHIN_NOISE, NOT_REPRODUCED = "reproduced", "within seed noise", "not reproduced"
NOT_JUDGED, NO_RESULT, SETTINGS_DIFFER = "not judged", "no result", "not judged: settings differ"
AT_CHANCE = "no better than chance on both sides"
#: Seeds a verdict needs before it may weigh the seed noise.
SEEDED = 3
CONFIDENCE = 0.95
#: What each label means, as the document defines it for its reader.
DEFINITIONS = {
    REPRODUCED: "our mean over the seeds lies within the tolerance of the report's number.",
    WITHIN_NOISE: "our mean lies outside the tolerance, but the report's number lies within the range one "
                  "run of ours falls in 95 % of the time (the prediction interval over our seeds): the report "
                  "gives a single run, and ours vary this much from seed to seed. Needs 3+ seeds.",
    NOT_REPRODUCED: "neither: the gap is larger than the tolerance and than our seed noise.",
    "… (1 seed), (2 seeds)": "the seed noise is unknown; the verdict is within the tolerance or not, and is "
                             "counted apart from the seeded ones.",
    AT_CHANCE: "a number the report's own setting leaves untrained (a head whose loss has weight 0): neither "
               "the report's nor ours is above what always guessing the most common class scores (the top of its "
               "95 % binomial interval for the test-set size; ours: our mean's 95 % interval reaches it).",
    SETTINGS_DIFFER: "this run's settings (data, epochs, batch, optimiser, model, precision) are not the "
                     "report's, so the number can neither reproduce nor fail to reproduce it.",
    NOT_JUDGED: "times and counts that depend on the machine or on how they are counted.",
}


@dataclass(frozen=True)
class SeedSpread:
    """Our values of one number over the run's seeds."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return fmean(self.values)

    @property
    def low_high(self) -> tuple[float, float]:
        """The seed range."""
        return min(self.values), max(self.values)

    def _half_width(self, one_run: bool) -> float | None:
        if self.n < 2:
            return None
        from scipy import stats

        scale = stdev(self.values) * math.sqrt((1 if one_run else 0) + 1 / self.n)
        return float(stats.t.ppf(0.5 + CONFIDENCE / 2, self.n - 1)) * scale

    @property
    def interval(self) -> tuple[float, float] | None:
        """The 95 % confidence interval of our mean (Student's t; None below 2 seeds)."""
        half = self._half_width(one_run=False)
        return None if half is None else (self.mean - half, self.mean + half)

    @property
    def prediction(self) -> tuple[float, float] | None:
        """Where one more run of ours falls 95 % of the time (None below 2 seeds)."""
        half = self._half_width(one_run=True)
        return None if half is None else (self.mean - half, self.mean + half)


def seed_verdict(report: float, spread: SeedSpread, tolerance: float) -> str:
    """The verdict of ours over seeds against the report's number within ``tolerance`` (see the module)."""
    # A hair of slack so that a difference printed as 0.50 against ±0.5 is not failed by rounding.
    within = abs(spread.mean - report) <= tolerance + 1e-9
    if spread.n < SEEDED:
        seeds = f"{spread.n} seed" + ("s" if spread.n > 1 else "")
        return f"{REPRODUCED if within else NOT_REPRODUCED} ({seeds})"
    if within:
        return REPRODUCED
    low, high = spread.prediction
    return WITHIN_NOISE if low - 1e-9 <= report <= high + 1e-9 else NOT_REPRODUCED


def is_seeded(verdict: str) -> bool:
    """Whether a verdict weighed the seed noise (3+ seeds) rather than resting on 1 or 2."""
    return verdict in (REPRODUCED, WITHIN_NOISE, NOT_REPRODUCED)


def chance_ceiling(largest_share: float, test_images: int) -> float:
    """The most (percent) a guess knowing only the class shares scores on ``test_images``: the top of the
    95 % binomial interval of always guessing the most common class."""
    from scipy import stats

    high = stats.binom.interval(CONFIDENCE, test_images, largest_share)[1]
    return 100 * float(high) / test_images


def chance_verdict(report: float, report_images: int, ours: SeedSpread, our_images: int, largest_share: float) -> str:
    """:data:`AT_CHANCE`, or which side learned something (lies above chance)."""
    interval = ours.interval if ours.n >= SEEDED else None
    ours_low = interval[0] if interval is not None else ours.mean
    above = [side for side, value, images in (("the report", report, report_images), ("ours", ours_low, our_images))
             if value > chance_ceiling(largest_share, images)]
    return AT_CHANCE if not above else "above chance: " + ", ".join(above)


def seed_label(values: Sequence[float]) -> str:
    """'3 seeds' / '1 seed'."""
    return f"{len(values)} seed" + ("s" if len(values) != 1 else "")
