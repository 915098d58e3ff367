"""harness nightly [suites=A,B] [profile=nightly] [device=cpu|cuda] [baseline=FILE] [fail=...] [remeasure=yes|no] [drift=N] [reports=DIR] [key=value ...]

The nightly regression check, the same in CI and on a desk (`tox -e nightly`): runs each suite
(its `nightly` profile, or `smoke` where it has none), compares each run with the suite's entry in
the baseline file (default reports/baselines/<cpu|cuda>-<profile>.json), and when something
regressed, or changed beyond its threshold without a noise estimate ("unconfirmed"), runs that suite
once more and keeps only the regressions the second run confirms: one noisy run on a shared machine
never fails the night alone. Then the drift check fits the last N nights stored for the suite
together against the baseline (harness.history.drift), which catches a slow drift that no single
night shows. Writes each run's report.html (with the comparison), comparison.json and benchmark.json
(pytest-benchmark format), reports/index.html and reports/nightly.json; exits 1 on a confirmed
regression or a drift. Other key=value pairs are suite overrides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rich.console import Console

from harness import runner
from harness.commands import compare as compare_command
from harness.commands.args import parse_arguments
from harness.compare import baselines, benchmark_export
from harness.compare.checks import parse_checks
from harness.compare.comparison import Comparison, check_metrics, compare, confirm
from harness.compare.results import RunResults
from harness.errors import RegressionFound, UserError
from harness.history import drift
from harness.history.site import COMPARISON
from harness.paths import atomic_write
from harness.runner import render_run
from harness.store import ResultsStore
from harness.suite.overrides import Override
from harness.tasks import load_suite

DEFAULT_SUITES = ("mlp_baseline", "cnn_baseline")
OPTIONS = {
    "suites": f"comma-separated suites (default {','.join(DEFAULT_SUITES)})",
    "profile": "profile to run; a suite without it runs 'smoke' (default nightly)",
    "device": "cpu | cuda (default cpu): also picks the baseline file",
    "baseline": "baseline file (default reports/baselines/<device>-<profile>.json)",
    "fail": "thresholds replacing the suites', e.g. train_seconds:+25%",
    "remeasure": "yes | no: run a suite again before reporting its regressions (default yes)",
    "drift": f"nights the drift check fits together (default {drift.DEFAULT_NIGHTS}; 0: no drift check)",
    "reports": "reports folder (default $HARNESS_REPORTS or ./reports)",
}


@dataclass
class NightlyRequest:
    """What the nightly check runs; built from the command line, or directly by tests."""

    suites: list[str] = field(default_factory=lambda: list(DEFAULT_SUITES))
    profile: str = "nightly"
    device: str = "cpu"
    baseline: Path | None = None
    fail: str | None = None
    remeasure: bool = True
    drift_nights: int = drift.DEFAULT_NIGHTS
    reports: Path = Path("reports")
    overrides: list[Override] = field(default_factory=list)

    @property
    def baseline_file(self) -> Path:
        return self.baseline or baselines.baseline_path(self.reports, self.device, self.profile)


@dataclass
class SuiteOutcome:
    """One suite's night: the comparisons made (one, or two when it was measured again) and what stands."""

    suite: str
    comparisons: list[Comparison]
    confirmed: list[str]
    #: The drift check's trends over the last nights (empty when off or too few nights are stored).
    trends: list[drift.Trend] = field(default_factory=list)

    @property
    def drifting(self) -> list[str]:
        return [trend.message for trend in self.trends if trend.drifting]

    def as_dict(self) -> dict:
        return {"suite": self.suite, "confirmed_regressions": self.confirmed, "drifting": self.drifting,
                "comparisons": [comparison.as_dict() for comparison in self.comparisons],
                "drift": [trend.as_dict() for trend in self.trends]}


def suite_profile(suite: str, wanted: str, console: Console) -> str:
    """``wanted`` when the suite defines it, else ``smoke`` (said once, so nobody is surprised)."""
    profiles = load_suite(suite, "smoke").profiles
    if wanted in profiles:
        return wanted
    console.print(f"{suite}: no {wanted!r} profile, running 'smoke'", markup=False)
    return "smoke"


def measure(request: NightlyRequest, suite: str, profile: str, console: Console) -> RunResults:
    """A fresh run of the suite, calibrated whatever its frameworks: a comparison needs the calibration."""
    overrides = [Override("matrix.devices", [request.device], "device="), *request.overrides]
    outcome = runner.run(runner.RunRequest(suite, profile, overrides=overrides, resume="no", reports=request.reports,
                                           calibrate_always=True), console)
    with ResultsStore(request.reports / "results.db") as store:
        return baselines.from_store(store, outcome.run.run_id)


def judge(baseline: RunResults, measure_once: Callable[[], RunResults], fail: str | None, remeasure: bool,
          console: Console) -> list[Comparison]:
    """Compare a fresh run with the baseline; when it shows suspects (regressions, or changes beyond a
    threshold that one measurement cannot confirm), measure again and judge the second run with the
    first (:func:`harness.compare.comparison.confirm`). The last comparison holds the night's verdicts."""
    comparisons = [compare(baseline, measure_once(), fail)]
    suspects = comparisons[0].suspects
    if suspects and remeasure:
        console.print(f"{baseline.suite}: {len(suspects)} suspected regression(s); measuring once more", markup=False)
        comparisons.append(confirm(comparisons[0], compare(baseline, measure_once(), fail)))
    return comparisons


def check_suite(request: NightlyRequest, suite: str, expected: dict[str, RunResults], console: Console) -> SuiteOutcome:
    profile = suite_profile(suite, request.profile, console)
    if suite not in expected:
        raise UserError(f"baseline {request.baseline_file} has no suite {suite!r}: run it, then "
                        f"harness baseline update suite={suite} profile={request.profile}")
    comparisons = judge(expected[suite], lambda: measure(request, suite, profile, console), request.fail,
                        request.remeasure, console)
    confirmed = [v.message for v in comparisons[-1].regressions]
    for comparison in comparisons:
        compare_command.print_comparison(comparison, console)
        folder = request.reports / suite / comparison.current_id
        with ResultsStore(request.reports / "results.db") as store:
            render_run(store, request.reports, store.run(comparison.current_id), None, comparison)
            benchmark_export.export(baselines.from_store(store, comparison.current_id), folder / "benchmark.json")
        # Kept with the run, so the history site can mark the runs the gate flagged.
        atomic_write(folder / COMPARISON, json.dumps(comparison.as_dict(), indent=1) + "\n")
    return SuiteOutcome(suite, comparisons, confirmed, check_drift(request, suite, profile, expected[suite], console))


def check_drift(request: NightlyRequest, suite: str, profile: str, baseline: RunResults,
                console: Console) -> list[drift.Trend]:
    """The suite's last ``drift_nights`` stored runs of this profile (tonight's included) fitted
    together against the baseline; prints what drifts, or why there was nothing to fit."""
    if request.drift_nights == 0:
        return []
    with ResultsStore(request.reports / "results.db") as store:
        nights = baselines.runs_of(store, suite, profile)[-request.drift_nights:]
    if len(nights) < drift.MIN_NIGHTS:
        console.print(f"{suite}: drift check needs {drift.MIN_NIGHTS} stored nights, {len(nights)} so far", markup=False)
        return []
    trends = drift.check(baseline, nights, request.fail)
    found = [trend.message for trend in trends if trend.drifting]
    console.print(f"{suite}: drift over the last {len(nights)} nights: " + ("; ".join(found) or "none"), markup=False)
    return trends


def run(request: NightlyRequest, console: Console) -> list[SuiteOutcome]:
    """Run, compare, measure suspects again, write the reports; returns each suite's outcome."""
    expected = {results.suite: results for results in baselines.read_baseline(request.baseline_file).values()}
    for suite in request.suites:
        if suite in expected:
            check_metrics(request.fail, expected[suite])  # a misspelt fail= is refused before anything runs
    outcomes = [check_suite(request, suite, expected, console) for suite in request.suites]
    atomic_write(request.reports / "nightly.json",
                 json.dumps({"baseline": str(request.baseline_file), "profile": request.profile,
                             "suites": [outcome.as_dict() for outcome in outcomes]}, indent=1) + "\n")
    console.print(f"reports: {request.reports / 'index.html'}", markup=False)
    return outcomes


def request_from_arguments(argv: list[str]) -> NightlyRequest:
    args = parse_arguments(argv, OPTIONS, allow_overrides=True)
    options = args.options
    if options.get("device", "cpu") not in ("cpu", "cuda"):
        raise UserError(f"device={options['device']!r}: allowed: cpu, cuda")
    if options.get("remeasure", "yes") not in ("yes", "no"):
        raise UserError(f"remeasure={options['remeasure']!r}: allowed: yes, no")
    nights = options.get("drift", str(drift.DEFAULT_NIGHTS))
    if not nights.isdigit() or 0 < int(nights) < drift.MIN_NIGHTS:
        raise UserError(f"drift={nights!r}: expected 0 (no drift check) or a number of nights from {drift.MIN_NIGHTS}")
    if "fail" in options:
        parse_checks(options["fail"])
    suites = [name.strip() for name in options.get("suites", ",".join(DEFAULT_SUITES)).split(",") if name.strip()]
    for suite in suites:
        load_suite(suite, "smoke")  # an unknown suite is reported before anything runs
    return NightlyRequest(
        suites=suites,
        profile=options.get("profile", "nightly"),
        device=options.get("device", "cpu"),
        baseline=Path(options["baseline"]) if "baseline" in options else None,
        fail=options.get("fail"),
        remeasure=options.get("remeasure", "yes") == "yes",
        drift_nights=int(nights),
        reports=args.reports,
        overrides=args.overrides,
    )


def main(argv: list[str], console: Console) -> int:
    outcomes = run(request_from_arguments(argv), console)
    confirmed = [message for outcome in outcomes for message in outcome.confirmed]
    drifting = [message for outcome in outcomes for message in outcome.drifting]
    if confirmed or drifting:
        found = [f"{len(confirmed)} confirmed regression(s)"] * bool(confirmed) + [f"{len(drifting)} drift(s)"] * bool(drifting)
        raise RegressionFound(" and ".join(found) + ": " + "; ".join(confirmed + drifting))
    return 0

