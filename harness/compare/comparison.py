"""A run against its baseline: every check on every row, timings put on the baseline's scale, and
what may explain a change (environment differences, the machine's load).

Timings are scaled by the runs' calibration workloads (:mod:`harness.calibration`), so
"seconds here" become "seconds on the baseline's machine, as busy as it was then". Two guards keep the
scaling honest:

- A factor outside 1/3..3 means the two machines (or one machine at two moments) are too different
  for a matmul to stand for a training loop: the timings are reported *not comparable*, with a
  warning, instead of being multiplied by, say, 112 and then called "within noise". The same holds
  for a run whose calibration after the cells took over 3 times as long as the one before, or under
  a third (the ``drift``): its first and last cells were timed on different machines, in effect, and
  a suspect measured again on such a run is no confirmation.
- CPU runs that could use different numbers of cores are not compared either: a small training step
  may run as fast on one core as on two while the calibration's matmul does not, so the scaling would
  hide a real slowdown on the smaller machine.
- Nor are runs trained in different precisions (``train.precision``, in each run's environment; runs
  that predate it trained in fp32): a bf16 run is faster or slower by the arithmetic, not by the code.
- A calibration whose own spread exceeds 25 % (interquartile range of its samples over their median,
  before or after the cells) was taken while the machine's speed wandered: its factor cannot be
  trusted, so a timing regression of that run is *unconfirmed* until a second run shows it again.

Scaling by the calibration is what keeps a busy machine from reading as slower (or faster) code;
on one quiet machine, though, the calibration's own noise adds false alarms. So with
``normalize=auto`` runs of one machine stay unscaled, but a timing regression must then also survive
the scaling (a busy machine is not blamed on the code). docs/regression-gate.md has the measurements
behind each rule and the commands that repeat them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from harness.compare.checks import SUSPECT, Check, EqualCheck, Outcome, StatusCheck, Verdict, parse_checks
from harness.compare.results import RunResults, Side
from harness.errors import UserError
from harness.thresholds import is_timing

#: Environment entries that identify the machine: when they differ, timings need the calibration.
MACHINE_KEYS = ("cpu", "cpu_cores", "gpu")
#: Calibration ratios beyond which timings are not compared (see the module docstring).
MAX_TIME_SCALE = 3.0
#: Calibration spread (percent) beyond which a timing regression is not confirmed by one run.
MAX_CALIBRATION_SPREAD = 25.0
WARNING = "warning: "


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
    #: What to know to read the verdicts; those starting ``warning:`` say the comparison is weaker than
    #: it looks (timings not comparable, say). Notes, so every writer of comparisons shows them.
    notes: tuple[str, ...] = ()

    @property
    def warnings(self) -> list[str]:
        return [note for note in self.notes if note.startswith(WARNING)]

    @property
    def regressions(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if verdict.regressed]

    @property
    def suspects(self) -> list[Verdict]:
        """Regressions and unconfirmed changes: what a second measurement is asked about."""
        return [verdict for verdict in self.verdicts if verdict.outcome in SUSPECT]

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


@dataclass(frozen=True)
class TimeScale:
    """How the current run's timings are put on the baseline's scale, and how far to trust that."""

    factor: float = 1.0
    note: str | None = None
    #: Set when timings cannot be compared at all (the factor is out of range).
    not_comparable: str | None = None
    #: The reason in a few words, for each timing verdict that ``not_comparable`` stops.
    not_compared_because: str = "the calibrations differ too much"
    #: Set when a calibration was unsteady: timing regressions stay unconfirmed.
    unsteady: str | None = None
    #: True when the factor scales the timings (not when they are left alone: normalize, no calibration).
    scaled: bool = False


def time_scale(baseline: RunResults, current: RunResults, normalize: str) -> TimeScale:
    """The factor for the current run's timings, with a note saying why, and the warnings that limit it."""
    before, now = baseline.calibration_seconds, current.calibration_seconds
    unsteady = [f"{name} {spread:.0f} %" for name, spread in
                (("baseline", baseline.calibration_spread), ("this run", current.calibration_spread))
                if spread is not None and spread > MAX_CALIBRATION_SPREAD]
    unsteady_text = (f"the calibration was unsteady ({', '.join(unsteady)} spread, over {MAX_CALIBRATION_SPREAD:g} %): "
                     "timing regressions need a second run") if unsteady else None
    drifted = [f"{name} x{value:.1f}" for name, value in
               (("baseline", baseline.calibration_drift), ("this run", current.calibration_drift))
               if value is not None and not 1 / MAX_TIME_SCALE <= value <= MAX_TIME_SCALE]
    if drifted:
        # The same bound as between runs: within one run, a machine whose speed changed more than that
        # timed the first cells and the last ones on different machines, in effect.
        return TimeScale(not_comparable=f"timings not comparable: the machine's speed changed while the cells ran "
                                        f"({', '.join(drifted)} from the calibration before them to the one after, "
                                        f"allowed up to x{MAX_TIME_SCALE:g}); measure again when it is quieter")
    precisions = precision(baseline), precision(current)
    if precisions[0] != precisions[1]:
        return TimeScale(not_comparable=f"timings not comparable with this baseline: it trained in {precisions[0]}, "
                                        f"this run in {precisions[1]}; measure a baseline in {precisions[1]}",
                         not_compared_because=f"trained in {precisions[1]}, the baseline in {precisions[0]}")
    cores = usable_cores(baseline), usable_cores(current)
    if None not in cores and cores[0] != cores[1] and baseline.calibration.get("device", "cpu") == "cpu":
        return TimeScale(not_comparable=f"timings not comparable with this baseline: it could use {cores[0]} "
                                        f"core(s), this run {cores[1]}; one fixed calibration workload cannot "
                                        "stand for every row's use of the cores: measure a baseline with "
                                        f"{cores[1]} core(s)")
    if normalize == "never":
        return TimeScale(unsteady=unsteady_text)
    same_machine = all(baseline.environment.get(k) == current.environment.get(k) for k in MACHINE_KEYS)
    if before is None or now is None:
        if normalize == "auto" and same_machine:
            return TimeScale(unsteady=unsteady_text)
        missing = "baseline" if before is None else "current run"
        return TimeScale(note=f"timings not normalised: the {missing} has no calibration")
    factor = before / now
    described = f"calibration {current.calibration_text()} here vs {baseline.calibration_text()} in the baseline"
    if not 1 / MAX_TIME_SCALE <= factor <= MAX_TIME_SCALE:
        # On one kind of machine only the load can have changed that much; across kinds, the machines.
        advice = ("the machine's load changed that much between the runs: measure again when it is quieter"
                  if same_machine else "measure a baseline on this kind of machine")
        return TimeScale(not_comparable=f"timings not comparable with this baseline: the {described} differ by "
                                        f"x{max(factor, 1 / factor):.1f} (allowed up to x{MAX_TIME_SCALE:g}); {advice}")
    if normalize == "auto" and same_machine:
        return TimeScale(unsteady=unsteady_text)
    return TimeScale(factor, f"timings scaled by {factor:.3f} ({described})", unsteady=unsteady_text, scaled=True)


def precision(results: RunResults) -> str:
    """The precision the run trained in; fp32 for runs that predate the setting (they all trained in it)."""
    return str(results.environment.get("precision") or "fp32")


def usable_cores(results: RunResults) -> int | None:
    """How many cores the run's process could use (``cpu_cores`` for runs that did not record it)."""
    value = results.environment.get("usable_cores", results.environment.get("cpu_cores"))
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def row_scale(scale: TimeScale, load: float | None, before: Side, now: Side) -> tuple[TimeScale, float | None]:
    """The run's scale and machine load, narrowed to one row where the cells of both sides carry their
    own calibration (taken just before and after each cell): a load that came and went during a run is
    then set against the cells it slowed, not averaged over the whole run."""
    before_seconds, now_seconds = before.calibration, now.calibration
    if before_seconds is None or now_seconds is None or scale.not_comparable is not None:
        return scale, load
    factor = before_seconds / now_seconds
    if not 1 / MAX_TIME_SCALE <= factor <= MAX_TIME_SCALE:
        return replace(scale, factor=1.0, scaled=False,
                       not_comparable=f"the calibrations around this row's cells differ by "
                                      f"x{max(factor, 1 / factor):.1f}"), None
    if scale.scaled:
        return replace(scale, factor=factor), load
    return scale, factor if load is not None else None


def machine_load(baseline: RunResults, current: RunResults) -> float | None:
    """For two runs of one machine: baseline calibration / current calibration (below 1 when the
    machine itself ran slower during the current run), or None without both calibrations."""
    before, now = baseline.calibration_seconds, current.calibration_seconds
    versions = {run.calibration.get("version") for run in (baseline, current)}
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


def other_settings(verdict: Verdict) -> Verdict:
    """A verdict between runs of different settings: not comparable, its numbers shown for reading only."""
    return replace(verdict, outcome=Outcome.NOT_COMPARABLE,
                   message=f"{verdict.message.partition('; ')[0]}; not compared: the settings differ")


def limit_timing(verdict: Verdict, scale: TimeScale) -> Verdict:
    """A timing verdict as far as the calibration lets it go: not comparable at all, or a regression
    left unconfirmed when the calibration was unsteady."""
    if scale.not_comparable is not None:
        return replace(verdict, outcome=Outcome.NOT_COMPARABLE,
                       message=f"{verdict.message.partition('; ')[0]}; not compared: {scale.not_compared_because}")
    if scale.unsteady is not None and verdict.regressed:
        return replace(verdict, outcome=Outcome.UNCONFIRMED,
                       message=f"{verdict.message}; unconfirmed: the calibration was unsteady")
    return verdict


def check_metrics(fail: str | None, baseline: RunResults) -> None:
    """Every metric named in ``fail`` (the command line's thresholds) must be one the baseline holds:
    a misspelt name would otherwise judge nothing, and a gate with a typo would pass silently."""
    unknown = [check.metric for check in parse_checks(fail or "") if check.metric not in baseline.metrics()]
    if unknown:
        raise UserError(f"fail=: no metric {', '.join(map(repr, unknown))} in the runs of {baseline.suite}; "
                        f"metrics: {', '.join(baseline.metrics()) or 'none'}")


def compare(baseline: RunResults, current: RunResults, fail: str | None = None, alpha: float | None = None,
            normalize: str | None = None) -> Comparison:
    """Judge ``current`` against ``baseline`` row by row.

    Thresholds come from the current run's suite settings, with ``fail`` (command-line thresholds)
    replacing those of the metrics it names; ``alpha`` and ``normalize`` likewise.
    """
    check_metrics(fail, baseline)
    settings = current.settings()
    status_check = StatusCheck()
    checks: list[Check] = [status_check, EqualCheck("params")]
    checks += parse_checks(fail or "", parse_checks(settings.fail))
    alpha = settings.alpha if alpha is None else alpha
    normalize = normalize or settings.normalize
    scale = time_scale(baseline, current, normalize)
    notes = [WARNING + text for text in (scale.not_comparable, scale.unsteady) if text]
    notes += [note for note in (scale.note,) if note]
    load = (machine_load(baseline, current) if normalize == "auto" and scale.factor == 1.0
            and scale.not_comparable is None else None)
    if len(baseline.runs) > 1:
        notes.append(f"baseline pooled from {len(baseline.runs)} runs: timings are judged against how much they "
                     "varied from run to run")
    settings_differ = baseline.config_hash != current.config_hash
    if settings_differ:
        notes.append(f"settings differ (config {baseline.config_hash} vs {current.config_hash}): the runs do not "
                     "measure the same thing, so their numbers are not compared; compare runs of the same settings")
    before_rows, now_rows = baseline.rows(), current.rows()
    verdicts: list[Verdict] = []
    per_cell = 0
    for row in list(before_rows) + [r for r in now_rows if r not in before_rows]:
        before = Side(tuple(before_rows.get(row, ())))
        row_timing, row_load = row_scale(scale, load, before, Side(tuple(now_rows.get(row, ()))))
        per_cell += row_timing is not scale or row_load is not load
        now = Side(tuple(now_rows.get(row, ())), row_timing.factor)
        status = status_check.judge(row, now, before, alpha)
        if settings_differ and status.outcome is Outcome.REGRESSED and not now.cells:
            status = other_settings(status)  # other settings may run other rows; a failing cell still fails
        verdicts.append(status)
        if status.outcome in (Outcome.NEW,) or not now.cells:
            continue
        for check in checks[1:]:
            verdict = check.judge(row, now, before, alpha)
            if verdict is None:
                continue
            if is_timing(verdict.metric):
                if verdict.regressed and row_load is not None:
                    verdict = blame_the_machine(verdict, check.judge(row, replace(now, time_scale=row_load), before,
                                                                     alpha), row_load)
                verdict = limit_timing(verdict, row_timing)
            verdicts.append(other_settings(verdict) if settings_differ else verdict)
    if per_cell:
        notes.append(f"{per_cell} row(s) judged by the calibrations taken around their own cells")
    return Comparison(
        suite=current.suite,
        baseline_id=baseline.described,
        current_id=current.run_id,
        checks=tuple(str(check) for check in checks),
        alpha=alpha,
        time_scale=scale.factor,
        verdicts=tuple(verdicts),
        environment_changes=tuple(environment_changes(baseline.environment, current.environment)),
        notes=tuple(notes),
    )


def confirm(first: Comparison, rerun: Comparison) -> Comparison:
    """The rerun's comparison judged with the first: a change that is a suspect (regressed or
    unconfirmed) in both runs is a confirmed regression; a regression of the rerun alone is not.
    How ``harness nightly`` and ``harness compare ... rerun=RUN`` keep one noisy run from failing."""
    suspects = {(v.row, v.metric): v for v in first.suspects}
    verdicts = []
    for verdict in rerun.verdicts:
        earlier = suspects.get((verdict.row, verdict.metric))
        if earlier is not None and verdict.outcome in SUSPECT:
            both = (f"{earlier.change:+.1f} then {verdict.change:+.1f} {verdict.change_unit}".rstrip()
                    if earlier.change is not None and verdict.change is not None else "in both runs")
            verdict = replace(verdict, outcome=Outcome.REGRESSED,
                              message=f"{verdict.message.partition('; ')[0]}; confirmed by a second run ({both})")
        elif verdict.regressed:
            verdict = replace(verdict, outcome=Outcome.UNCONFIRMED,
                              message=f"{verdict.message}; unconfirmed: not a regression in run {first.current_id}")
        verdicts.append(verdict)
    note = f"measured twice: runs {first.current_id} and {rerun.current_id}; a regression must show in both"
    return replace(rerun, verdicts=tuple(verdicts), notes=(*rerun.notes, note))
