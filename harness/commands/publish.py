"""harness publish out=DIR [suites=A,B] [reports=DIR]

Write the history of every stored run as a static site into DIR: an index and one page per suite with
graphs over time (per model: test accuracy, training seconds, seconds to target; one series per
backend x device x machine, and the calibration per machine), each point linking to its run's page,
runs the nightly gate flagged ringed in red. Nothing is loaded from elsewhere: open DIR/index.html
from disk, upload it as a CI artifact, or serve it with GitHub Pages.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from harness.commands.args import parse_arguments
from harness.errors import UserError
from harness.history.site import SiteSummary, publish

OPTIONS = {
    "out": "folder to write the site into (its index.html is the entry page)",
    "suites": "comma-separated suites (default: every suite in the store)",
    "reports": "reports folder (default $HARNESS_REPORTS or ./reports)",
}


def run(reports: Path, out: Path, suites: list[str] | None, console: Console) -> SiteSummary:
    if not (reports / "results.db").is_file():
        raise UserError(f"no results store at {reports / 'results.db'}: run a suite (or harness merge) first")
    started = time.perf_counter()
    summary = publish(reports, out, suites)
    console.print(f"site: {out / 'index.html'} ({summary.suites} suite(s), {summary.runs} run(s), {summary.files} "
                  f"files, {summary.bytes / 1e6:.1f} MB, {time.perf_counter() - started:.1f} s)", markup=False)
    return summary


def main(argv: list[str], console: Console) -> int:
    args = parse_arguments(argv, OPTIONS, allow_overrides=False)
    options = args.options
    if "out" not in options:
        raise UserError("missing out=DIR: the folder to write the site into")
    suites = [name.strip() for name in options["suites"].split(",") if name.strip()] if "suites" in options else None
    reports = args.reports
    run(reports, Path(options["out"]), suites, console)
    return 0
