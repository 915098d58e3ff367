"""harness report suite=NAME [run=RUN_ID] [reports=DIR]

Re-renders a stored run's tables and plots from the results store, without retraining.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from harness.commands.args import option_help, parse_arguments
from harness.errors import UserError
from harness.paths import reports_dir
from harness.store import ResultsStore, write_run_files
from harness.suite.schema import Suite
from harness.tasks import task_for, validate_suite

OPTIONS = {
    "suite": "suite name",
    "run": "run id (default: the newest run of the suite)",
    "reports": "reports folder (default $HARNESS_REPORTS or ./reports)",
}


def render(suite_name: str, run_id: str | None, reports: Path, console: Console) -> Path:
    """Render a stored run into its folder; returns the folder."""
    if not (reports / "results.db").exists():
        raise UserError(f"no results store at {reports / 'results.db'}: run a suite first")
    with ResultsStore(reports / "results.db") as store:
        run = store.run(run_id) if run_id else store.latest_run(suite_name)
        if run is None:
            raise UserError(f"no stored run of suite {suite_name!r} in {reports}")
        if run.suite != suite_name:
            raise UserError(f"run {run.run_id} belongs to suite {run.suite!r}, not {suite_name!r}")
        suite: Suite = validate_suite(run.config, f"run {run.run_id}")  # the settings the run used, unchanged
        task = task_for(suite.task)
        cells = store.cells(run.run_id)
        folder = run.folder(reports)
        write_run_files(folder, run, cells, task.columns)
        task.render(suite, cells, folder, console)
    from harness.report import html as html_report

    html_report.write_report(reports, run.run_id)
    return folder


def main(argv: list[str], console: Console) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        console.print(option_help(__doc__.splitlines()[0], OPTIONS), markup=False)
        return 0
    args = parse_arguments(argv, OPTIONS, allow_overrides=False)
    if "suite" not in args.options:
        raise UserError("missing suite=NAME")
    reports = Path(args.options["reports"]) if "reports" in args.options else reports_dir()
    folder = render(args.options["suite"], args.options.get("run"), reports, console)
    console.print(f"rendered: {folder}", markup=False)
    return 0
