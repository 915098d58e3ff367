"""harness compare BASELINE [CURRENT] [rerun=RUN] [fail=METRIC:±N[%],...] [alpha=P] [normalize=auto|always|never] [reports=DIR] [json=PATH]

Compares a run against a baseline, row by row (a row pools a model's seeds and repeats), and exits 1
when anything regressed. BASELINE, CURRENT and RUN are each a baseline file (reports/baselines/*.json),
a results.json or run folder, or a run id of the store; BASELINE may also be several runs of one
suite, comma-separated (A,B,C), pooled. Without CURRENT, each suite of BASELINE is compared with the
newest finished run of that suite and profile in the store.

Thresholds come from the suite's [regression] table (default test_accuracy:-1.0,train_seconds:+10%);
fail= replaces those of the metrics it names. A change counts only beyond both its threshold and the
noise (see harness.compare.checks). Timings vary more between runs than within one, so a timing
change between one run and another is "unconfirmed" and fails nothing; rerun= names a second run of
the same code, and a change seen in both runs is confirmed. Against a baseline of several runs, one
run's timings are judged against the baseline runs' spread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.commands.args import parse_arguments
from harness.compare import baselines
from harness.compare.checks import Outcome, Verdict, parse_checks
from harness.compare.comparison import WARNING, Comparison, compare, confirm
from harness.compare.results import RunResults
from harness.errors import RegressionFound, UserError
from harness.paths import atomic_write
from harness.store import ResultsStore
from harness.thresholds import unit

OPTIONS = {
    "rerun": "a second run of CURRENT's code: a regression must show in both runs",
    "fail": "thresholds replacing the suite's, e.g. test_accuracy:-0.5,train_seconds:+10%",
    "alpha": "significance level of the noise tests (default: the suite's, 0.05)",
    "normalize": "auto | always | never: scale timings by the calibration workload (default: the suite's, auto)",
    "reports": "reports folder (default $HARNESS_REPORTS or ./reports)",
    "json": "also write the comparison to this JSON file",
}


@dataclass
class CompareRequest:
    """What to compare; built from the command line, or directly by tests."""

    baseline: str
    current: str | None = None
    #: A second run of the current code; None: judge CURRENT alone.
    rerun: str | None = None
    fail: str | None = None
    alpha: float | None = None
    normalize: str | None = None
    reports: Path = Path("reports")
    json: Path | None = None


def request_from_arguments(argv: list[str]) -> CompareRequest:
    args = parse_arguments(argv, OPTIONS, allow_overrides=False, positional=2)
    if not args.positional:
        raise UserError("missing BASELINE: a baseline file, a results.json, a run folder or a run id")
    options = args.options
    if "fail" in options:
        parse_checks(options["fail"])  # a bad threshold is reported before anything is read
    alpha = None
    if "alpha" in options:
        try:
            alpha = float(options["alpha"])
        except ValueError:
            raise UserError(f"alpha={options['alpha']!r}: expected a number between 0 and 1") from None
        if not 0 < alpha < 1:
            raise UserError(f"alpha={alpha}: expected a number between 0 and 1")
    if "rerun" in options and len(args.positional) < 2:
        raise UserError("rerun= needs CURRENT too: harness compare BASELINE CURRENT rerun=RUN")
    if options.get("normalize") not in (None, "auto", "always", "never"):
        raise UserError(f"normalize={options['normalize']!r}: allowed: auto, always, never")
    if "json" in options and not Path(options["json"]).parent.is_dir():
        # Creating folders the user did not ask for (a typo, /nonexistent/...) is not this command's to do.
        raise UserError(f"json={options['json']}: no folder {Path(options['json']).parent}; create it first")
    return CompareRequest(
        baseline=args.positional[0],
        current=args.positional[1] if len(args.positional) > 1 else None,
        rerun=options.get("rerun"),
        fail=options.get("fail"),
        alpha=alpha,
        normalize=options.get("normalize"),
        reports=args.reports,
        json=Path(options["json"]) if "json" in options else None,
    )


def pairs(request: CompareRequest) -> list[tuple[RunResults, RunResults]]:
    """(baseline, current) per suite."""
    before = {results.suite: results for results in baselines.resolve(request.baseline, request.reports)}
    if request.current is not None:
        now = baselines.resolve(request.current, request.reports)
        missing = [results.suite for results in now if results.suite not in before]
        if missing:
            raise UserError(f"the baseline {request.baseline} has no suite {', '.join(missing)}; "
                            f"it has: {', '.join(before)}")
        return [(before[results.suite], results) for results in now]
    database = request.reports / "results.db"
    if not database.exists():
        raise UserError(f"no CURRENT given and no results store at {database}: run the suites first")
    with ResultsStore(database) as store:
        return [(results, baselines.latest(store, suite, results.profile)) for suite, results in before.items()]


def reruns(request: CompareRequest) -> dict[str, RunResults]:
    """The second runs named by rerun=, by suite (none without it)."""
    if request.rerun is None:
        return {}
    return {results.suite: results for results in baselines.resolve(request.rerun, request.reports)}


def run(request: CompareRequest, console: Console) -> list[Comparison]:
    """Compare and print; returns the comparisons (the caller decides what a regression means)."""
    second = reruns(request)
    comparisons = []
    for baseline, current in pairs(request):
        comparison = compare(baseline, current, request.fail, request.alpha, request.normalize)
        if request.rerun is not None:
            if current.suite not in second:
                raise UserError(f"rerun={request.rerun} has no run of suite {current.suite!r}")
            again = compare(baseline, second[current.suite], request.fail, request.alpha, request.normalize)
            comparison = confirm(comparison, again)
        comparisons.append(comparison)
    for comparison in comparisons:
        print_comparison(comparison, console)
    if request.json is not None:
        atomic_write(request.json, json.dumps([c.as_dict() for c in comparisons], indent=1) + "\n")
    return comparisons


def main(argv: list[str], console: Console) -> int:
    comparisons = run(request_from_arguments(argv), console)
    regressions = [verdict for comparison in comparisons for verdict in comparison.regressions]
    if regressions:
        raise RegressionFound(f"{len(regressions)} regression(s): " + "; ".join(v.message for v in regressions))
    return 0


# ---------------------------------------------------------------------------------------------------
# Output


def shown(verdict: Verdict) -> bool:
    """Thresholds always; status and parameter rows only when they say something."""
    return verdict.metric not in ("status", "params") or verdict.outcome is not Outcome.UNCHANGED


def format_value(metric: str, value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}" if unit(metric) == "%" else f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def format_p(p_value: float | None) -> str:
    if p_value is None:
        return "–"
    return f"{p_value:.3f}" if p_value >= 0.001 else f"{p_value:.1e}"


def marker(outcome: Outcome) -> Text:
    return Text(f"{outcome.marker} {outcome.value}", style=outcome.style)


def comparison_table(comparison: Comparison) -> Table:
    """One line per shown verdict; units in the metric column, changes in pp (points) or %."""
    table = Table(title=f"{comparison.suite}: {comparison.current_id} vs baseline {comparison.baseline_id}",
                  title_justify="left")
    table.add_column("Row")
    table.add_column("Metric (unit)")
    table.add_column("Baseline", justify="right")
    table.add_column("Current", justify="right")
    table.add_column("Change", justify="right")
    table.add_column("Limit")
    table.add_column("p", justify="right")
    table.add_column("n (base/cur)", justify="right")
    table.add_column("Verdict")
    for verdict in comparison.verdicts:
        if not shown(verdict):
            continue
        metric_unit = unit(verdict.metric)
        change = "–" if verdict.change is None else f"{verdict.change:+.2f} {verdict.change_unit}".rstrip()
        table.add_row(
            verdict.row,
            f"{verdict.metric} ({metric_unit})" if metric_unit else verdict.metric,
            format_value(verdict.metric, verdict.baseline),
            format_value(verdict.metric, verdict.current),
            change,
            verdict.check.partition(":")[2] if verdict.metric not in ("status",) else "ok",
            format_p(verdict.p_value),
            "/".join(str(n) for n in verdict.samples) if any(verdict.samples) else "–",
            marker(verdict.outcome),
        )
    return table


def print_comparison(comparison: Comparison, console: Console) -> None:
    """The table, then what changed in the environment, then a one-line summary."""
    console.print(comparison_table(comparison))
    for verdict in comparison.verdicts:
        if verdict.reason and verdict.outcome in (Outcome.REGRESSED, Outcome.NOISE, Outcome.UNCONFIRMED):
            console.print(f"{verdict.outcome.marker} {verdict.row}, {verdict.metric}: {verdict.reason}", markup=False)
    for note in comparison.notes:
        console.print(note if note.startswith(WARNING) else f"note: {note}", markup=False)
    if comparison.environment_changes:
        changes = ", ".join(f"{c.key} {c.baseline} -> {c.current}" for c in comparison.environment_changes[:8])
        more = len(comparison.environment_changes) - 8
        console.print(f"environment changed: {changes}" + (f" (+{more} more)" if more > 0 else ""), markup=False)
    counts = comparison.counts()
    summary = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    unconfirmed = counts[Outcome.UNCONFIRMED.value]
    if unconfirmed:
        console.print(f"{unconfirmed} unconfirmed change(s) fail nothing: confirm them with a second run "
                      "(rerun=RUN; harness nightly measures again by itself) or against a baseline of several runs",
                      markup=False)
    console.print(f"{comparison.suite}: {summary or 'nothing compared'}", markup=False)
