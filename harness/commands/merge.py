"""harness merge SOURCE... [reports=DIR]

Bring the runs of other results stores into this one (reports=DIR's results.db): each SOURCE is a
results.db, or a reports folder (its results.db, or its run folders' results.json). Runs are matched
by id: a run already here unchanged is skipped, so merging twice changes nothing; a run id here with
different content refuses the whole merge, with nothing written. Runs still being written (or left
unfinished) are not merged. The new runs' folders (pages, figures) are copied along.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from harness.commands.args import parse_arguments
from harness.errors import UserError
from harness.history.merge import MergeReport, merge

OPTIONS = {"reports": "the reports folder merged into (default $HARNESS_REPORTS or ./reports)"}


def run(reports: Path, sources: list[Path], console: Console) -> MergeReport:
    report = merge(reports, sources)
    for line in report.skipped:
        console.print(line, markup=False)
    console.print(f"merged into {reports / 'results.db'}: {report.summary()}", markup=False)
    return report


def main(argv: list[str], console: Console) -> int:
    args = parse_arguments(argv, OPTIONS, allow_overrides=False, positional=len(argv))
    if not args.positional:
        raise UserError("missing SOURCE: give one or more results.db files or reports folders to merge")
    reports = args.reports
    sources = [Path(text) for text in args.positional]
    for source in sources:
        if not source.exists():
            raise UserError(f"merge source {source}: no such file or folder")
    run(reports, sources, console)
    return 0
