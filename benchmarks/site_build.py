"""How long ``harness publish`` takes, and how large the site is, for N stored runs.

    PYTHONPATH=. python benchmarks/site_build.py [--runs 1000] [--reports DIR]

Stores N synthetic nightly runs (one a night, alternating between two machines; each run a model
on two backends with two seeds, per-epoch history, calibration: the shape of a real suite's run)
into DIR (a temporary folder unless given; an existing store there is reused), then builds the site
and prints the build time, file count and size, and the largest page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.history.site import publish  # noqa: E402
from tests.history_runs import stored_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--reports", type=Path)
    args = parser.parse_args()
    reports = args.reports or Path(tempfile.mkdtemp(prefix="site-build-"))
    if not (reports / "results.db").exists():
        for night in range(args.runs):
            stored_run(reports, f"run{night:05d}", night, ("box-a", "box-b")[night % 2], noise=0.05,
                       seconds=10.0 * (1 + 0.001 * night))
    out = reports.parent / (reports.name + "-site")
    started = time.perf_counter()
    summary = publish(reports, out)
    seconds = time.perf_counter() - started
    largest = max(out.glob("*.html"), key=lambda p: p.stat().st_size)
    print(f"{summary.runs} runs: site built in {seconds:.1f} s, {summary.files} files, "
          f"{summary.bytes / 1e6:.1f} MB; largest page {largest.name} {largest.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
