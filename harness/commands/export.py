"""harness export mlflow tracking_uri=URI [run=ID[,ID...]] [experiment=NAME] [reports=DIR]

Log stored runs to an MLflow tracking server (needs the extra: pip install 'harness[mlflow]'): each
run as a parent MLflow run, each cell as a child with the resolved settings as params, the record's
numbers and the per-epoch history (with the epoch as step) as metrics, the environment as tags and
the figures as artifacts; a study run is the parent of its members. Runs already exported to the
experiment are skipped, so exporting again adds only what is new.
"""

from __future__ import annotations


from rich.console import Console

from harness.commands.args import parse_arguments
from harness.errors import UserError

TARGETS = ("mlflow",)
OPTIONS = {
    "tracking_uri": "the MLflow tracking server, e.g. http://127.0.0.1:5000",
    "run": "comma-separated run ids (default: every finished run)",
    "experiment": "MLflow experiment to log into (default harness)",
    "reports": "reports folder (default $HARNESS_REPORTS or ./reports)",
}


def main(argv: list[str], console: Console) -> int:
    args = parse_arguments(argv, OPTIONS, allow_overrides=False, positional=1)
    if args.positional != ["mlflow"]:
        raise UserError(f"export to what? targets: {', '.join(TARGETS)} (harness export mlflow tracking_uri=URI)")
    options = args.options
    if "tracking_uri" not in options:
        raise UserError("missing tracking_uri=URI (the MLflow tracking server, e.g. http://127.0.0.1:5000)")
    reports = args.reports
    if not (reports / "results.db").is_file():
        raise UserError(f"no results store at {reports / 'results.db'}: nothing to export")
    from harness.history.mlflow_export import export

    run_ids = [r.strip() for r in options["run"].split(",") if r.strip()] if "run" in options else None
    summary = export(reports, options["tracking_uri"], run_ids, options.get("experiment", "harness"))
    console.print(f"mlflow {options['tracking_uri']}, experiment {summary.experiment}: {len(summary.created)} MLflow "
                  f"run(s) created, {len(summary.skipped)} harness run(s) already there", markup=False)
    return 0
