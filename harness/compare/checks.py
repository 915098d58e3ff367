"""Regression checks: small objects that judge one comparison row and say why.

A :class:`ThresholdCheck` is a :class:`~harness.thresholds.Threshold` (``test_accuracy:-0.5``,
``train_seconds:+10%``) that also asks the noise: a change in the bad direction beyond the threshold
is a regression only when the samples say it is real (other metrics, such as accuracy over seeds:
Welch's t-test). Timings are judged between runs: the epochs of one process share its memory layout,
thread placement and the machine's state, so they vary far less than runs of the same code do, and a
test over one run's epochs raises false alarms (docs/regression-gate.md has the figures). Against a
baseline pooled from several runs (``harness baseline update ... runs=N``), a run's median is tested
against the spread of the baseline runs' medians (Student's t, :func:`harness.compare.stats.run_test`).
With one run a side, the run-to-run noise is unknown: a change beyond the threshold that stands out
of the runs' own epochs or repeats (Mann-Whitney U) is only *unconfirmed*, and so is one timed once;
it fails nothing until a second run shows it again (``harness nightly`` runs the suite once more;
``harness compare ... rerun=RUN`` reads one). A single accuracy is held to the threshold alone:
training with a fixed seed repeats it exactly.
Two checks are always on: parameter counts must be equal, and a cell that passed before must not
fail now.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any, Iterable

from harness.compare.results import Side
from harness.compare.stats import mean_test, rank_test, run_test
from harness.thresholds import Threshold, is_timing, parse_threshold, parse_thresholds, unit


class Outcome(str, Enum):
    """What a check concluded for one row."""

    REGRESSED = "regressed"
    UNCONFIRMED = "unconfirmed"
    NOT_COMPARABLE = "not comparable"
    IMPROVED = "improved"
    UNCHANGED = "unchanged"
    NOISE = "within noise"
    NEW = "new"

    @property
    def marker(self) -> str:
        """A one-character marker for tables (readable without colour)."""
        return {"regressed": "▼", "unconfirmed": "?", "not comparable": "≠", "improved": "▲", "unchanged": "=",
                "within noise": "~", "new": "+"}[self.value]

    @property
    def style(self) -> str:
        """The rich style of the marker."""
        return {"regressed": "bold red", "unconfirmed": "magenta", "not comparable": "magenta", "improved": "green",
                "unchanged": "dim", "within noise": "yellow", "new": "cyan"}[self.value]


#: Outcomes a second measurement is asked about: a regression, or a change beyond the threshold that
#: one measurement could not confirm.
SUSPECT = (Outcome.REGRESSED, Outcome.UNCONFIRMED)


@dataclass(frozen=True)
class Verdict:
    """One check's conclusion for one row of a comparison."""

    row: str
    check: str
    metric: str
    outcome: Outcome
    baseline: float | str | None = None
    current: float | str | None = None
    #: Absolute change (metric units) for absolute checks, percent for relative ones.
    change: float | None = None
    change_unit: str = ""
    p_value: float | None = None
    samples: tuple[int, int] = (0, 0)
    message: str = ""

    @property
    def regressed(self) -> bool:
        return self.outcome is Outcome.REGRESSED

    @property
    def reason(self) -> str:
        """What decided the outcome beyond the numbers (the noise test, the sample count, the load)."""
        return self.message.partition("; ")[2]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        return data


class Check:
    """A rule judged on one row: :meth:`judge` gives a :class:`Verdict` (None if it does not apply)."""

    metric: str

    def judge(self, row: str, current: Side, baseline: Side, alpha: float) -> Verdict | None:
        raise NotImplementedError

    def fails(self, current: Side, baseline: Side, alpha: float = 0.05) -> str | None:
        """The message if ``current`` regressed against ``baseline``, else None."""
        verdict = self.judge("", current, baseline, alpha)
        return verdict.message if verdict is not None and verdict.regressed else None


@dataclass(frozen=True)
class ThresholdCheck(Threshold, Check):
    """A threshold judged on a row: beyond the limit in the bad direction and beyond the noise."""

    def judge(self, row: str, current: Side, baseline: Side, alpha: float) -> Verdict | None:
        now, before = current.sample(self.metric), baseline.sample(self.metric)
        if not now or not before:
            return None
        timing = is_timing(self.metric)
        # Medians for timings (robust to one slow repeat), means for accuracy over seeds.
        centre = statistics.median if timing else statistics.fmean
        old, new = centre(before), centre(now)
        if self.relative:
            change = (new / old - 1.0) * 100.0 if old else math.inf
        else:
            change = new - old
        beyond = change * self.worse > self.limit  # moved the bad way by more than allowed
        better = -change * self.worse > self.limit
        unit_label = "%" if self.relative else ("pp" if unit(self.metric) == "%" else unit(self.metric))
        described = f"{row}: {self.metric} {old:.4g} -> {new:.4g} ({change:+.2f} {unit_label}, limit {self})"
        if timing:
            outcome, p_value, noise = self._timing(now, before, current, baseline, beyond, better, alpha)
        else:
            outcome, p_value, noise = self._other(now, before, beyond, better, alpha)
        return Verdict(row, str(self), self.metric, outcome, old, new, change, unit_label, p_value,
                       (len(before), len(now)), f"{described}; {noise}" if noise else described)

    def _other(self, now: tuple[float, ...], before: tuple[float, ...], beyond: bool, better: bool, alpha: float
               ) -> tuple[Outcome, float | None, str]:
        """Accuracy and other metrics: the threshold, and Welch's t over seeds where both sides have several."""
        if beyond:
            p_bad = mean_test(now, before, self.worse)
            if p_bad is None:
                return Outcome.REGRESSED, None, f"no noise estimate: {min(len(before), len(now))} sample"
            if p_bad < alpha:
                return Outcome.REGRESSED, p_bad, f"p={p_bad:.3g} < {alpha:g}"
            return Outcome.NOISE, p_bad, f"within noise (p={p_bad:.3g} >= {alpha:g})"
        if better:
            p_good = mean_test(now, before, -self.worse)
            if p_good is None or p_good < alpha:
                return Outcome.IMPROVED, p_good, ""
            return Outcome.NOISE, p_good, "within noise"
        return Outcome.UNCHANGED, None, ""

    def _timing(self, now: tuple[float, ...], before: tuple[float, ...], current: Side, baseline: Side,
                beyond: bool, better: bool, alpha: float) -> tuple[Outcome, float | None, str]:
        """A timing: between runs where the sides hold three runs or more, else within the one run of
        each side (its epochs or repeats), which can leave a change unconfirmed but never confirm one."""
        if not beyond and not better:
            return Outcome.UNCHANGED, None, ""
        worse = self.worse if beyond else -self.worse
        runs_now, runs_before = current.run_medians(self.metric), baseline.run_medians(self.metric)
        between = run_test(runs_now, runs_before, worse)
        if between is not None:
            runs = f"{len(runs_before)} baseline run(s) vs {len(runs_now)}"
            if between >= alpha:
                return Outcome.NOISE, between, f"within the run-to-run noise (p={between:.3g} >= {alpha:g} over {runs})"
            if beyond:
                return Outcome.REGRESSED, between, f"p={between:.3g} < {alpha:g} over {runs}"
            return Outcome.IMPROVED, between, ""
        within = rank_test(now, before, worse)
        if within is None:
            once = f"{min(len(before), len(now))} sample"
            if beyond:
                return Outcome.UNCONFIRMED, None, f"unconfirmed: {once} on a side, no noise estimate (a second run confirms it)"
            return Outcome.NOISE, None, f"within noise ({once}: no noise estimate)"
        if within >= alpha:
            return Outcome.NOISE, within, f"within noise (p={within:.3g} >= {alpha:g})"
        if beyond:
            return (Outcome.UNCONFIRMED, within,
                    f"unconfirmed: one run a side (p={within:.3g} over its samples, which do not show how much "
                    "runs differ): a second run, or a baseline of several runs, confirms it")
        return Outcome.IMPROVED, within, ""


@dataclass(frozen=True)
class EqualCheck(Check):
    """A structural value (the parameter count) must not change at all."""

    metric: str = "params"

    def __str__(self) -> str:
        return f"{self.metric}:="

    def judge(self, row: str, current: Side, baseline: Side, alpha: float) -> Verdict | None:
        now, before = set(current.sample(self.metric)), set(baseline.sample(self.metric))
        if not now or not before:
            return None
        old, new = _single(before), _single(now)
        if now == before:
            return Verdict(row, str(self), self.metric, Outcome.UNCHANGED, old, new, 0.0, "", None,
                           (len(before), len(now)), f"{row}: {self.metric} {old}")
        return Verdict(row, str(self), self.metric, Outcome.REGRESSED, old, new, None, "", None,
                       (len(before), len(now)), f"{row}: {self.metric} changed: {old} -> {new}")


@dataclass(frozen=True)
class StatusCheck(Check):
    """A row whose cells all passed in the baseline must pass now; a fixed row is an improvement."""

    metric: str = "status"

    def __str__(self) -> str:
        return "status:ok"

    def judge(self, row: str, current: Side, baseline: Side, alpha: float) -> Verdict | None:
        if not baseline.cells:
            return Verdict(row, str(self), "status", Outcome.NEW, None, _status(current), message=f"{row}: new row")
        if not current.cells:
            return Verdict(row, str(self), "status", Outcome.REGRESSED, _status(baseline), "missing",
                           message=f"{row}: in the baseline but not in this run")
        if baseline.ok and not current.ok:
            errors = "; ".join(sorted({c.error.splitlines()[0] for c in current.cells if c.error})) or "no message"
            return Verdict(row, str(self), "status", Outcome.REGRESSED, "ok", "failed",
                           message=f"{row}: passed in the baseline, fails now: {errors}")
        outcome = Outcome.IMPROVED if current.ok and not baseline.ok else Outcome.UNCHANGED
        return Verdict(row, str(self), "status", outcome, _status(baseline), _status(current), message=f"{row}: status")


def _single(values: set[float]) -> float | str:
    if len(values) == 1:
        value = next(iter(values))
        return int(value) if float(value).is_integer() else value
    return "/".join(f"{v:g}" for v in sorted(values))


def _status(side: Side) -> str:
    return "ok" if side.ok else "failed"


def parse_check(text: str) -> ThresholdCheck:
    """One threshold as a check; a UserError says what is wrong with it."""
    return ThresholdCheck(**asdict(parse_threshold(text)))


def parse_checks(text: str, base: Iterable[ThresholdCheck] = ()) -> list[ThresholdCheck]:
    """Comma-separated thresholds as checks; a metric named in ``text`` replaces its check in ``base``."""
    return [ThresholdCheck(**asdict(threshold)) for threshold in parse_thresholds(text, base)]
