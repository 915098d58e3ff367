"""Regression checks: is a run worse than its baseline, by more than a threshold and more than the noise?

A check is a small object parsed from a compact string and judged per row of a comparison::

    test_accuracy:-0.5     accuracy may not drop by more than 0.5 percentage points
    train_seconds:+10%     training time may not grow by more than 10 percent

The sign says which way is worse, and must agree with the metric's direction (accuracy: higher is
better; seconds and losses: lower is better), so a threshold can never silently guard the wrong side.
Two checks are always on: parameter counts must be equal, and a cell that passed before must not fail
now.

Noise. A row pools the cells that differ only in seed (and repeat), so each metric has a sample per
side. A change in the bad direction beyond the threshold is a regression only when the samples also
say it is real: timings (skewed, outlier-prone) with a one-sided Mann-Whitney U test, other metrics
(accuracy over seeds) with a one-sided Welch t-test. When either side has a single measurement there
is no spread to test; a timing is then held against the machine's jitter during the run (the spread
of its calibration samples), and without a calibration the threshold alone decides. The verdict
says which. Timings are scaled by the runs' calibration workloads (:mod:`harness.compare.calibration`), so
"seconds here" become "seconds on the baseline's machine, as busy as it was then". Measured on the
shared development machine over nine pairs of real runs, three with an injected 30 % slowdown: raw
seconds caught one slowdown and called plain pairs -48 % "improved"; per-epoch samples scaled by
the calibration caught two (the third at +28 %, within noise) and raised no false alarm. With
``normalize=auto`` runs of one machine stay unscaled, but a timing regression must then also
survive the scaling (a busy machine is not blamed on the code).

This module only judges; loading runs and baseline files lives in :mod:`harness.compare.baselines`, and output
in the commands.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.errors import UserError

DEFAULT_FAIL = "test_accuracy:-1.0,train_seconds:+10%"
#: Cell parameters that only repeat a measurement: cells differing in these are pooled into one row.
POOLED = ("seed", "repeat")
#: Environment entries that identify the machine: when they differ, timings need the calibration.
MACHINE_KEYS = ("cpu", "cpu_cores", "gpu")


class RegressionSettings(BaseModel):
    """How ``harness compare`` judges a run of this suite against its baseline (the suite's
    ``[regression]`` table; each field can be overridden on the command line)."""

    model_config = ConfigDict(extra="forbid")

    fail: str = Field(
        DEFAULT_FAIL,
        description="Thresholds, 'metric:-N' (absolute drop) or 'metric:+N%' (relative growth), comma-separated.",
    )
    alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Significance level of the noise tests.")
    normalize: Literal["always", "auto", "never"] = Field(
        "always",
        description="Scale timings by the calibration workload: 'always' when both runs have one; 'auto' "
                    "only across machines (on one machine a regression must then survive the scaling).",
    )

    @field_validator("fail")
    @classmethod
    def _parses(cls, text: str) -> str:
        try:
            parse_checks(text)
        except UserError as error:
            raise ValueError(str(error)) from None
        return text


class Outcome(str, Enum):
    """What a check concluded for one row."""

    REGRESSED = "regressed"
    IMPROVED = "improved"
    UNCHANGED = "unchanged"
    NOISE = "within noise"
    NEW = "new"

    @property
    def marker(self) -> str:
        """A one-character marker for tables (readable without colour)."""
        return {"regressed": "▼", "improved": "▲", "unchanged": "=", "within noise": "~", "new": "+"}[self.value]

    @property
    def style(self) -> str:
        """The rich style of the marker."""
        return {"regressed": "bold red", "improved": "green", "unchanged": "dim", "within noise": "yellow",
                "new": "cyan"}[self.value]


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


# ---------------------------------------------------------------------------------------------------
# Statistics


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


# ---------------------------------------------------------------------------------------------------
# What is compared


@dataclass(frozen=True)
class CellSummary:
    """One finished cell as a comparison needs it: identity, status, scalar record, repeated samples."""

    model: str
    backend: str
    device: str
    seed: int
    params: dict[str, Any]
    status: str
    error: str
    record: dict[str, Any]
    #: Repeated measurements of a metric within the cell (``artifacts['timings']``, per-epoch seconds).
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def row(self) -> str:
        """The comparison row this cell belongs to: everything but seed and repeat."""
        extra = "".join(f" {k}={v}" for k, v in sorted(self.params.items()) if k not in POOLED)
        return f"{self.model} · {self.backend}/{self.device}{extra}"

    def values(self, metric: str) -> list[float]:
        """Every measurement of ``metric`` in this cell (none if it is not a number here)."""
        if self.samples.get(metric):
            return [float(v) for v in self.samples[metric]]
        value = self.record.get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return [float(value)]
        return []

    @classmethod
    def from_parts(cls, cell: dict[str, Any], status: str, error: str, record: dict[str, Any],
                   artifacts: dict[str, Any]) -> "CellSummary":
        """From a stored cell's pieces; picks up repeated timings where the run recorded them."""
        samples = {name: list(values) for name, values in (artifacts.get("timings") or {}).items()}
        history = artifacts.get("history") or []
        epoch_seconds = [epoch["seconds"] for epoch in history if isinstance(epoch, dict) and "seconds" in epoch]
        if len(epoch_seconds) > 1:
            samples.setdefault("seconds_per_epoch", epoch_seconds)
            # Without repeats, each epoch measures the same training rate once more: epochs x its time
            # is a sample of the whole training time. Two epochs x four seeds give eight samples, not
            # four; on the shared machine that is what let a 30 % slowdown stand out of the noise.
            samples.setdefault("train_seconds", [seconds * len(epoch_seconds) for seconds in epoch_seconds])
        return cls(cell["model"], cell["backend"], cell["device"], int(cell["seed"]), dict(cell.get("params") or {}),
                   status, error, record, samples)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunResults:
    """A run reduced to what a comparison reads; built from the store, a results.json or a baseline file."""

    suite: str
    run_id: str
    profile: str
    config_hash: str
    created: str
    environment: dict[str, Any]
    regression: dict[str, Any]
    cells: list[CellSummary]

    def rows(self) -> dict[str, list[CellSummary]]:
        """Cells grouped by comparison row, in first-seen order."""
        rows: dict[str, list[CellSummary]] = {}
        for cell in self.cells:
            rows.setdefault(cell.row, []).append(cell)
        return rows

    @property
    def calibration_seconds(self) -> float | None:
        calibration = self.environment.get("calibration") or {}
        seconds = calibration.get("seconds")
        return float(seconds) if isinstance(seconds, (int, float)) and seconds > 0 else None

    @property
    def jitter(self) -> float | None:
        """The spread of the run's calibration samples, (max - min) / median in percent: how much the
        same fixed work varied in time on this machine while the run was measured. The noise estimate
        for a timing measured once (a single sample has no spread of its own)."""
        samples = (self.environment.get("calibration") or {}).get("samples") or []
        if len(samples) < 3:
            return None
        median = statistics.median(samples)
        return 100.0 * (max(samples) - min(samples)) / median if median > 0 else None

    def settings(self) -> RegressionSettings:
        """The suite's regression settings as stored with the run (defaults where it had none)."""
        return RegressionSettings.model_validate(self.regression or {})


@dataclass(frozen=True)
class Side:
    """The cells of one row on one side of a comparison, with timings already scaled."""

    cells: tuple[CellSummary, ...]
    time_scale: float = 1.0
    #: How much the machine's speed wandered during the run, percent (see RunResults.jitter).
    jitter: float | None = None

    def sample(self, metric: str) -> tuple[float, ...]:
        """All measurements of ``metric`` pooled over the row's cells (failed cells excluded)."""
        scale = self.time_scale if is_timing(metric) else 1.0
        return tuple(v * scale for c in self.cells if c.status == "ok" for v in c.values(metric))

    @property
    def ok(self) -> bool:
        return bool(self.cells) and all(cell.status == "ok" for cell in self.cells)


# ---------------------------------------------------------------------------------------------------
# Checks


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
        """What decided the outcome beyond the numbers (the noise test, the jitter, the load)."""
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
class ThresholdCheck(Check):
    """A metric may not move in the ``worse`` direction by more than ``limit`` (absolute units, or percent
    when ``relative``), and the move must stand out of the noise."""

    metric: str
    limit: float
    worse: int
    relative: bool

    def __str__(self) -> str:
        sign = "+" if self.worse > 0 else "-"
        return f"{self.metric}:{sign}{self.limit:g}{'%' if self.relative else ''}"

    def judge(self, row: str, current: Side, baseline: Side, alpha: float) -> Verdict | None:
        now, before = current.sample(self.metric), baseline.sample(self.metric)
        if not now or not before:
            return None
        # Medians for timings (robust to one slow repeat), means for accuracy over seeds.
        centre = statistics.median if is_timing(self.metric) else statistics.fmean
        old, new = centre(before), centre(now)
        if self.relative:
            change = (new / old - 1.0) * 100.0 if old else math.inf
        else:
            change = new - old
        beyond = change * self.worse > self.limit  # moved the bad way by more than allowed
        better = -change * self.worse > self.limit
        test = rank_test if is_timing(self.metric) else mean_test
        p_bad = test(now, before, self.worse)
        p_good = test(now, before, -self.worse)
        unit_label = "%" if self.relative else ("pp" if unit(self.metric) == "%" else unit(self.metric))
        described = f"{self.metric} {old:.4g} -> {new:.4g} ({change:+.2f} {unit_label}, limit {self})"
        jitters = [j for j in (current.jitter, baseline.jitter) if j is not None]
        jitter = max(jitters) if jitters and is_timing(self.metric) else None
        if beyond and p_bad is None and jitter is not None and abs(change) <= jitter and self.relative:
            # Measured once: the change must also exceed how much fixed work wandered on the machine.
            outcome = Outcome.NOISE
            message = f"{row}: {described}; within noise (1 sample; calibration jitter {jitter:.0f} %)"
        elif beyond and (p_bad is None or p_bad < alpha):
            outcome = Outcome.REGRESSED
            if p_bad is not None:
                noise = f"p={p_bad:.3g} < {alpha:g}"
            elif jitter is not None and self.relative:
                noise = f"1 sample, beyond the calibration jitter of {jitter:.0f} %"
            else:
                noise = "no noise estimate: 1 sample"
            message = f"{row}: {described}; {noise}"
        elif beyond:
            outcome, message = Outcome.NOISE, f"{row}: {described}; within noise (p={p_bad:.3g} >= {alpha:g})"
        elif better and (p_good is None or p_good < alpha) and not (jitter and p_good is None and abs(change) <= jitter):
            outcome, message = Outcome.IMPROVED, f"{row}: {described}"
        elif better:
            outcome, message = Outcome.NOISE, f"{row}: {described}; within noise"
        else:
            outcome, message = Outcome.UNCHANGED, f"{row}: {described}"
        return Verdict(row, str(self), self.metric, outcome, old, new, change, unit_label,
                       p_bad if change * self.worse > 0 else p_good, (len(before), len(now)), message)


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


_CHECK = re.compile(r"^(?P<metric>[A-Za-z_][A-Za-z0-9_]*):(?P<sign>[+-])(?P<number>\d+(\.\d*)?|\.\d+)(?P<pct>%?)$")


def parse_check(text: str) -> ThresholdCheck:
    """One threshold, ``metric:-N`` or ``metric:+N%``; a UserError says what is wrong with it."""
    match = _CHECK.match(text.strip())
    if match is None:
        raise UserError(
            f"bad threshold {text.strip()!r}: expected METRIC:-N (absolute drop) or METRIC:+N% (relative growth), "
            "e.g. test_accuracy:-0.5 or train_seconds:+10%"
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
    return ThresholdCheck(metric, float(match["number"]), worse, bool(match["pct"]))


def parse_checks(text: str, base: Iterable[ThresholdCheck] = ()) -> list[ThresholdCheck]:
    """Comma-separated thresholds; a metric named in ``text`` replaces its check in ``base``."""
    parsed = [parse_check(part) for part in text.split(",") if part.strip()]
    named = {check.metric for check in parsed}
    return [check for check in base if check.metric not in named] + parsed


# ---------------------------------------------------------------------------------------------------
# Comparison


@dataclass(frozen=True)
class EnvironmentChange:
    """An environment entry that differs between the two runs (what may explain a change)."""

    key: str
    baseline: Any
    current: Any

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """Every verdict of one run against its baseline, with the context needed to read them."""

    suite: str
    baseline_id: str
    current_id: str
    checks: tuple[str, ...]
    alpha: float
    #: Factor the current run's timings were multiplied by (baseline calibration / current calibration).
    time_scale: float
    verdicts: tuple[Verdict, ...]
    environment_changes: tuple[EnvironmentChange, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def regressions(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if verdict.regressed]

    def counts(self) -> dict[str, int]:
        """How many verdicts of each outcome."""
        return {outcome.value: sum(v.outcome is outcome for v in self.verdicts) for outcome in Outcome}

    def as_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "baseline_id": self.baseline_id,
            "current_id": self.current_id,
            "checks": list(self.checks),
            "alpha": self.alpha,
            "time_scale": self.time_scale,
            "counts": self.counts(),
            "regressions": len(self.regressions),
            "verdicts": [verdict.as_dict() for verdict in self.verdicts],
            "environment_changes": [change.as_dict() for change in self.environment_changes],
            "notes": list(self.notes),
        }


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys (for environment tables and diffs)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def environment_changes(baseline: dict[str, Any], current: dict[str, Any]) -> list[EnvironmentChange]:
    """Differing environment entries, calibration samples left out (they always differ)."""
    old, new = flatten(baseline), flatten(current)
    skip = ("calibration.", "hostname", "started", "finished")
    keys = sorted(k for k in set(old) | set(new) if not k.startswith(skip) and old.get(k) != new.get(k))
    return [EnvironmentChange(key, old.get(key), new.get(key)) for key in keys]


def time_scale(baseline: RunResults, current: RunResults, normalize: str) -> tuple[float, str | None]:
    """The factor for the current run's timings, and a note saying why (None when 1.0 for no reason
    worth telling)."""
    if normalize == "never":
        return 1.0, None
    before, now = baseline.calibration_seconds, current.calibration_seconds
    same_machine = all(baseline.environment.get(k) == current.environment.get(k) for k in MACHINE_KEYS)
    if normalize == "auto" and same_machine:
        return 1.0, None
    if before is None or now is None:
        missing = "baseline" if before is None else "current run"
        return 1.0, f"timings not normalised: the {missing} has no calibration"
    factor = before / now
    return factor, f"timings scaled by {factor:.3f} (calibration {now:.3f} s here vs {before:.3f} s in the baseline)"


def machine_load(baseline: RunResults, current: RunResults) -> float | None:
    """For two runs of one machine: baseline calibration / current calibration (below 1 when the
    machine itself ran slower during the current run), or None without both calibrations."""
    before, now = baseline.calibration_seconds, current.calibration_seconds
    versions = {(run.environment.get("calibration") or {}).get("version") for run in (baseline, current)}
    if before is None or now is None or len(versions) != 1:
        return None
    return before / now


def blame_the_machine(raw: Verdict, normalised: Verdict | None, load: float) -> Verdict:
    """A timing that regressed in raw seconds but not once scaled by the calibration: the fixed
    workload slowed down as much, so the machine was busier, and the code is not shown to be slower.
    Raw seconds are kept for a run on one machine (the calibration adds noise of its own), so a
    regression has to survive both views."""
    if normalised is None or normalised.regressed:
        return raw
    slower = (1.0 / load - 1.0) * 100.0
    return replace(raw, outcome=Outcome.NOISE,
                   message=f"{raw.message}; but the calibration workload ran {slower:+.0f} % slower too "
                           f"(machine load): {normalised.change:+.1f} % once scaled")


def compare(baseline: RunResults, current: RunResults, fail: str | None = None, alpha: float | None = None,
            normalize: str | None = None) -> Comparison:
    """Judge ``current`` against ``baseline`` row by row.

    Thresholds come from the current run's suite settings, with ``fail`` (command-line thresholds)
    replacing those of the metrics it names; ``alpha`` and ``normalize`` likewise.
    """
    settings = current.settings()
    checks: list[Check] = [StatusCheck(), EqualCheck("params")]
    thresholds = parse_checks(fail or "", parse_checks(settings.fail))
    checks += thresholds
    alpha = settings.alpha if alpha is None else alpha
    normalize = normalize or settings.normalize
    scale, note = time_scale(baseline, current, normalize)
    notes = [note] if note else []
    load = machine_load(baseline, current) if normalize == "auto" and scale == 1.0 else None
    if baseline.config_hash != current.config_hash:
        notes.append(f"settings differ (config {baseline.config_hash} vs {current.config_hash}): "
                     "the runs may not measure the same thing")
    before_rows, now_rows = baseline.rows(), current.rows()
    verdicts: list[Verdict] = []
    for row in list(before_rows) + [r for r in now_rows if r not in before_rows]:
        before = Side(tuple(before_rows.get(row, ())), jitter=baseline.jitter)
        now = Side(tuple(now_rows.get(row, ())), scale, current.jitter)
        status = StatusCheck().judge(row, now, before, alpha)
        verdicts.append(status)
        if status.outcome in (Outcome.NEW,) or not now.cells:
            continue
        for check in checks[1:]:
            verdict = check.judge(row, now, before, alpha)
            if verdict is not None and verdict.regressed and is_timing(verdict.metric) and load is not None:
                verdict = blame_the_machine(verdict, check.judge(row, replace(now, time_scale=load), before, alpha),
                                            load)
            if verdict is not None:
                verdicts.append(verdict)
    return Comparison(
        suite=current.suite,
        baseline_id=baseline.run_id,
        current_id=current.run_id,
        checks=tuple(str(check) for check in checks),
        alpha=alpha,
        time_scale=scale,
        verdicts=tuple(verdicts),
        environment_changes=tuple(environment_changes(baseline.environment, current.environment)),
        notes=tuple(notes),
    )
