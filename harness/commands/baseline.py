"""harness baseline update suite=NAME [runs=N | run=ID[,ID...]] [profile=NAME] [reports=DIR] [out=PATH]
harness baseline show [FILE] [reports=DIR]

update: writes the run (default: the newest finished run of the suite), or several runs of the same
code pooled into one entry (runs=N: the newest N with the newest one's profile and settings; run=A,B,C),
into the baseline file of its device kind and profile, reports/baselines/<cpu|cuda>-<profile>.json,
replacing that suite's entry and keeping the others. Pooled runs show how much timings vary from run
to run, so `harness compare` can judge one new run's timings against them. The file is committed: it
is what `harness compare` and the nightly job measure against. show: the suites of a baseline file
(default: every file in reports/baselines).
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.commands.args import command_help, parse_arguments
from harness.compare import baselines
from harness.compare.results import RunResults
from harness.environment import commit_text
from harness.errors import UserError, echo
from harness.store import ResultsStore

#: The usage lines of --help (this command has actions).
USAGE_LINES = 2

OPTIONS = {
    "suite": "update: the suite whose run becomes the baseline",
    "run": "update: run id, or comma-separated run ids to pool (default: the newest finished run of the suite)",
    "runs": "update: pool the newest N finished runs of the suite with the newest one's profile and settings "
            "(default 1)",
    "profile": "update: the baseline's profile, the file name's second part (default: the run's profile)",
    "reports": "reports folder (default $HARNESS_REPORTS or ./reports)",
    "out": "update: write this file instead of reports/baselines/<device-kind>-<profile>.json",
}
ACTIONS = ("update", "show")


def update(suite: str, reports: Path, run_id: str | None = None, profile: str | None = None,
           out: Path | None = None, runs: int = 1) -> tuple[Path, RunResults]:
    """Write a run, or several pooled (``run_id`` "A,B,C" or the newest ``runs``), into its baseline
    file; returns the file and what was written."""
    database = reports / "results.db"
    if not database.exists():
        raise UserError(f"no results store at {database}: run suite {suite} first")
    with ResultsStore(database) as store:
        if run_id is None:
            chosen = newest_alike(store, suite, runs)
        else:
            chosen = [baselines.from_store(store, one.strip()) for one in run_id.split(",") if one.strip()]
    for results in chosen:
        if results.suite != suite:
            raise UserError(f"run {results.run_id} belongs to suite {results.suite!r}, not {suite!r}")
        failed = [cell.row for cell in results.cells if cell.status != "ok"]
        if failed:
            # A failed cell in the baseline would make every later failure of it look normal.
            raise UserError(f"run {results.run_id} has failed cells ({', '.join(sorted(set(failed)))}): "
                            "a baseline must be a clean run")
    results = baselines.pooled(chosen)
    path = out or baselines.baseline_path(reports, baselines.device_kind(results), profile or results.profile)
    baselines.write_baseline(path, results, profile or results.profile)
    return path, results


def newest_alike(store: ResultsStore, suite: str, count: int) -> list[RunResults]:
    """The newest ``count`` finished runs of ``suite`` that share the newest one's profile and settings,
    oldest first; a UserError says how many more to run when there are fewer."""
    finished = [run for run in store.runs(suite) if run.status != "running"]
    if not finished:
        raise UserError(f"no finished run of suite {suite!r} in {store.path}: run it first")
    newest = finished[-1]
    alike = [run.run_id for run in finished if run.profile == newest.profile and run.config_hash == newest.config_hash]
    if len(alike) < count:
        raise UserError(f"runs={count}: the store has {len(alike)} finished run(s) of suite {suite!r} with profile "
                        f"{newest.profile!r} and its newest settings (config {newest.config_hash}); run it "
                        f"{count - len(alike)} more time(s)")
    return [baselines.from_store(store, run_id) for run_id in alike[-count:]]


def show(paths: list[Path], console: Console) -> None:
    """A table of the suites in each baseline file."""
    table = Table(title="baselines", title_justify="left")
    for column in ("File", "Suite", "Run", "Runs", "Profile", "Created", "Commit", "Cells", "Calibration"):
        table.add_column(column, justify="right" if column in ("Runs", "Cells", "Calibration") else "left")
    for path in paths:
        for name, results in baselines.read_baseline(path).items():
            table.add_row(path.name, name, results.run_id, str(len(results.runs) or 1), results.profile,
                          results.created, commit_text(results.environment), str(len(results.cells)),
                          results.calibration_text())
    console.print(table)


def main(argv: list[str], console: Console) -> int:
    if not argv:
        console.print(command_help(sys.modules[__name__]), markup=False)
        return 2
    action = argv[0]
    if action not in ACTIONS:
        raise UserError(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    args = parse_arguments(argv[1:], OPTIONS, allow_overrides=False, positional=1 if action == "show" else 0)
    reports = args.reports
    if action == "show":
        paths = [Path(args.positional[0])] if args.positional else sorted((reports / "baselines").glob("*.json"))
        if not paths:
            raise UserError(f"no baseline files in {reports / 'baselines'}: harness baseline update suite=NAME")
        show(paths, console)
        return 0
    if "suite" not in args.options:
        raise UserError("missing suite=NAME")
    out = Path(args.options["out"]) if "out" in args.options else None
    runs = args.options.get("runs", "1")
    if not runs.isdigit() or int(runs) < 1:
        raise UserError(f"runs={echo(runs)}: expected a whole number of runs, 1 or more")
    if "run" in args.options and "runs" in args.options:
        raise UserError("give run=ID[,ID...] or runs=N, not both")
    path, results = update(args.options["suite"], reports, args.options.get("run"), args.options.get("profile"), out,
                           int(runs))
    pooled = f"runs {', '.join(results.runs)}" if results.runs else f"run {results.run_id}"
    console.print(f"baseline {path}: suite {results.suite} from {pooled} ({len(results.cells)} cells)", markup=False)
    return 0
