"""harness history suite=NAME [metric=test_accuracy] [model=NAME] [profile=NAME] [last=N] [reports=DIR]

A metric of a suite over its stored runs, oldest first: one line per run (when, which commit, which
profile), one column per model x backend x device with the mean over seeds (the median over repeats
for timings) and its spread. Timing columns come with each run's calibration, so a slower machine is
told apart from slower code. The HTML report plots the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.commands.args import parse_arguments
from harness.compare import baselines
from harness.compare.results import RunResults
from harness.compare.stats import SampleStats
from harness.environment import commit_text
from harness.errors import UserError
from harness.store import ResultsStore
from harness.thresholds import is_timing, unit

OPTIONS = {
    "suite": "suite name",
    "metric": "a numeric column of results.csv (default test_accuracy)",
    "model": "only this model",
    "profile": "only runs of this profile",
    "last": "only the newest N runs",
    "reports": "reports folder (default $HARNESS_REPORTS or ./reports)",
}


@dataclass
class HistoryRequest:
    """Which history to show; built from the command line, or directly by tests."""

    suite: str
    metric: str = "test_accuracy"
    model: str | None = None
    profile: str | None = None
    last: int | None = None
    reports: Path = Path("reports")


def collect(request: HistoryRequest) -> tuple[list[RunResults], dict[str, list[SampleStats | None]]]:
    """The runs, and per row the metric's statistics in each run."""
    database = request.reports / "results.db"
    if not database.exists():
        raise UserError(f"no results store at {database}: run suite {request.suite} first")
    with ResultsStore(database) as store:
        runs = baselines.runs_of(store, request.suite, request.profile)
    if request.last is not None:
        runs = runs[-request.last:]
    if not runs:
        raise UserError(f"no finished run of suite {request.suite!r} in {request.reports}")
    rows = baselines.metric_history(runs, request.metric, request.model)
    if not rows:
        models = sorted({cell.model for run in runs for cell in run.cells})
        if request.model is not None and request.model not in models:
            raise UserError(f"model={request.model!r}: not in the runs of {request.suite}; models: {', '.join(models)}")
    if not any(stats for series in rows.values() for stats in series):
        raise UserError(f"metric={request.metric!r}: no run of {request.suite} has a numeric {request.metric} column")
    return runs, rows


def cell_text(stats: SampleStats | None, metric: str) -> str:
    """'97.52 ± 0.11' (mean ± sd over seeds) or '10.4 (9.9–11.2)' (median, range over repeats)."""
    if stats is None:
        return "–"
    if is_timing(metric):
        spread = f" ({stats.min:.3g}–{stats.max:.3g})" if stats.rounds > 1 else ""
        return f"{stats.median:.3g}{spread}"
    spread = f" ± {stats.stddev:.2f}" if stats.rounds > 1 else ""
    return f"{stats.mean:.2f}{spread}"


def history_table(request: HistoryRequest, runs: list[RunResults], rows: dict[str, list[SampleStats | None]]) -> Table:
    metric_unit = unit(request.metric)
    label = f"{request.metric} ({metric_unit})" if metric_unit else request.metric
    table = Table(title=f"{request.suite}: {label} over {len(runs)} run(s)", title_justify="left")
    table.add_column("Run")
    table.add_column("Created (UTC)")
    table.add_column("Profile")
    table.add_column("Commit")
    if is_timing(request.metric):
        table.add_column("Calibration (median ± spread)", justify="right")
    for row in rows:
        table.add_column(row, justify="right")
    for index, results in enumerate(runs):
        line = [results.run_id, results.created.replace("T", " ")[:19], results.profile,
                commit_text(results.environment)]
        if is_timing(request.metric):
            line.append(results.calibration_text())
        line += [cell_text(series[index], request.metric) for series in rows.values()]
        table.add_row(*line)
    return table


def request_from_arguments(argv: list[str]) -> HistoryRequest:
    args = parse_arguments(argv, OPTIONS, allow_overrides=False)
    options = args.options
    if "suite" not in options:
        raise UserError("missing suite=NAME")
    last = None
    if "last" in options:
        if not options["last"].isdigit() or int(options["last"]) < 1:
            raise UserError(f"last={options['last']!r}: expected a positive integer")
        last = int(options["last"])
    return HistoryRequest(options["suite"], options.get("metric", "test_accuracy"), options.get("model"),
                          options.get("profile"), last,
                          args.reports)


def main(argv: list[str], console: Console) -> int:
    request = request_from_arguments(argv)
    runs, rows = collect(request)
    console.print(history_table(request, runs, rows))
    return 0
