"""harness report suite=NAME|STUDY [run=RUN_ID] [reports=DIR]

Re-renders a stored run's tables and plots from the results store, without retraining, and prints the
suite's claims put to the test. For a study run: its reproduction document, and every member's claims.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from harness.study import runner as study_runner
from harness.commands.args import parse_arguments
from harness.errors import UserError
from harness.runner import render_run
from harness.store import ResultsStore

OPTIONS = {
    "suite": "suite or study name",
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
        if study_runner.is_study_run(run):
            return study_runner.render_study(store, reports, run, console).parent
        folder = render_run(store, reports, run, console)
        study_runner.print_run_claims(store, run, console)
        return folder


def main(argv: list[str], console: Console) -> int:
    args = parse_arguments(argv, OPTIONS, allow_overrides=False)
    if "suite" not in args.options:
        raise UserError("missing suite=NAME")
    reports = args.reports
    folder = render(args.options["suite"], args.options.get("run"), reports, console)
    console.print(f"rendered: {folder}", markup=False)
    return 0
