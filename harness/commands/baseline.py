"""harness baseline update suite=NAME [run=RUN_ID] [profile=NAME] [reports=DIR] [out=PATH]
harness baseline show [FILE] [reports=DIR]

update: writes the run (default: the newest finished run of the suite) into the baseline file of its
device kind and profile, reports/baselines/<cpu|cuda>-<profile>.json, replacing that suite's entry
and keeping the others. The file is committed: it is what `harness compare` and the nightly job
measure against. show: the suites of a baseline file (default: every file in reports/baselines).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.commands.args import option_help, parse_arguments
from harness.compare import baselines
from harness.compare.regression import RunResults
from harness.errors import UserError
from harness.paths import reports_dir
from harness.store import ResultsStore

OPTIONS = {
    "suite": "update: the suite whose run becomes the baseline",
    "run": "update: run id (default: the newest finished run of the suite)",
    "profile": "update: the baseline's profile, the file name's second part (default: the run's profile)",
    "reports": "reports folder (default $HARNESS_REPORTS or ./reports)",
    "out": "update: write this file instead of reports/baselines/<device-kind>-<profile>.json",
}
ACTIONS = ("update", "show")


def update(suite: str, reports: Path, run_id: str | None = None, profile: str | None = None,
           out: Path | None = None) -> tuple[Path, RunResults]:
    """Write a run into its baseline file; returns the file and what was written."""
    database = reports / "results.db"
    if not database.exists():
        raise UserError(f"no results store at {database}: run suite {suite} first")
    with ResultsStore(database) as store:
        if run_id is None:
            results = baselines.latest(store, suite)
        else:
            results = baselines.from_store(store, run_id)
            if results.suite != suite:
                raise UserError(f"run {run_id} belongs to suite {results.suite!r}, not {suite!r}")
    failed = [cell.row for cell in results.cells if cell.status != "ok"]
    if failed:
        # A failed cell in the baseline would make every later failure of it look normal.
        raise UserError(f"run {results.run_id} has failed cells ({', '.join(sorted(set(failed)))}): "
                        "a baseline must be a clean run")
    path = out or baselines.baseline_path(reports, baselines.device_kind(results), profile or results.profile)
    baselines.write_baseline(path, results, profile or results.profile)
    return path, results


def show(paths: list[Path], console: Console) -> None:
    """A table of the suites in each baseline file."""
    table = Table(title="baselines", title_justify="left")
    for column in ("File", "Suite", "Run", "Profile", "Created", "Commit", "Cells", "Calibration (s)"):
        table.add_column(column, justify="right" if column in ("Cells", "Calibration (s)") else "left")
    for path in paths:
        for name, results in baselines.read_baseline(path).items():
            commit = str(results.environment.get("git_commit") or "–")[:10]
            if results.environment.get("git_dirty"):
                commit += "*"
            calibration = results.calibration_seconds
            table.add_row(path.name, name, results.run_id, results.profile, results.created, commit,
                          str(len(results.cells)), "–" if calibration is None else f"{calibration:.3f}")
    console.print(table)


def main(argv: list[str], console: Console) -> int:
    if not argv or any(arg in ("-h", "--help") for arg in argv):
        console.print(option_help("\n".join(__doc__.splitlines()[:2]), OPTIONS), markup=False)
        return 0 if argv else 2
    action = argv[0]
    if action not in ACTIONS:
        raise UserError(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    args = parse_arguments(argv[1:], OPTIONS, allow_overrides=False, positional=1 if action == "show" else 0)
    reports = Path(args.options["reports"]) if "reports" in args.options else reports_dir()
    if action == "show":
        paths = [Path(args.positional[0])] if args.positional else sorted((reports / "baselines").glob("*.json"))
        if not paths:
            raise UserError(f"no baseline files in {reports / 'baselines'}: harness baseline update suite=NAME")
        show(paths, console)
        return 0
    if "suite" not in args.options:
        raise UserError("missing suite=NAME")
    out = Path(args.options["out"]) if "out" in args.options else None
    path, results = update(args.options["suite"], reports, args.options.get("run"), args.options.get("profile"), out)
    console.print(f"baseline {path}: suite {results.suite} from run {results.run_id} "
                  f"({len(results.cells)} cells)", markup=False)
    return 0
