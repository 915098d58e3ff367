"""The same suite with executor=local and executor=ray, and what Ray costs per cell.

    python benchmarks/bench_executor.py [--suite mlp_depth] [--profile smoke] [--cpus N]

Three runs of the suite, each into its own reports folder, in one process:

1. ``executor=local``: the cells one after another in this process, with ``$HARNESS_THREADS`` (or
   every core) threads;
2. ``executor=ray`` with ``threads_per_cell`` = those threads: one cell at a time, as local, so the
   difference is Ray's cost alone;
3. ``executor=ray threads_per_cell=1``: as many cells at once as there are CPUs.

Printed: each run's wall time (of the whole ``harness run``, and of its cells alone), the Ray start,
and Ray's overhead per cell from run 2, counted two ways: (a) the cells' wall time under Ray minus
under local, per cell (worker start-up, framework imports in the worker, dispatch, result transfer);
(b) dispatch and transfer alone, from the workers' own clocks: per cell, the time from its slot
freeing to the cell starting on a worker, plus from its end to its result being back on the driver
(the first cell's includes a worker process starting). Target: under 0.5 s per cell. Run 3 shows how
many cells ran at the same moment. On a machine shared with other work the wall times, and so (a),
swing by tens of seconds; (b) much less.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import runner  # noqa: E402
from harness.threads import framework_threads  # noqa: E402
from harness.executors import executor_named  # noqa: E402
from harness.runner import RunRequest  # noqa: E402


class Timed:
    """An executor whose cells' wall time (first handed over to last result back) is measured."""

    def __init__(self, inner):
        self.inner, self.name, self.seconds = inner, inner.name, 0.0

    def start(self, cells):
        self.inner.start(cells)

    def run(self, cells, context):
        started = time.perf_counter()
        try:
            yield from self.inner.run(cells, context)
        finally:
            self.seconds += time.perf_counter() - started


def run_suite(suite: str, profile: str, executor) -> tuple[float, Timed, list]:
    timed = Timed(executor)
    with tempfile.TemporaryDirectory(prefix="bench-executor-") as reports:
        started = time.perf_counter()
        outcome = runner.run(RunRequest(suite, profile, reports=Path(reports)), Console(file=io.StringIO()), timed)
        wall = time.perf_counter() - started
        from harness.store import ResultsStore

        with ResultsStore(Path(reports) / "results.db") as store:
            records = [stored.record for stored in store.cells(outcome.run.run_id)]
    if outcome.failed:
        raise SystemExit(f"cells failed: {outcome.failed}")
    return wall, timed, records


def dispatch_gaps(timings: list[tuple[float, float, float, float]]) -> list[float]:
    """Per cell of a one-at-a-time run, in order: the time from the slot freeing (the previous cell's end,
    or the hand-over for the first) to the cell starting on its worker, plus from its end to its result
    being back on the driver: what Ray adds around each cell."""
    ordered = sorted(timings, key=lambda timing: timing[1])
    gaps, free = [], ordered[0][0]
    for _, started, finished, received in ordered:
        gaps.append((started - free) + (received - finished))
        free = finished
    return gaps


def overlapping(timings: list[tuple[float, float, float, float]]) -> int:
    """The most cells that were running at the same moment (worker start/end times)."""
    events = sorted([(start, 1) for _, start, _, _ in timings] + [(end, -1) for _, _, end, _ in timings])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="mlp_depth")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--cpus", type=int, default=len(os.sched_getaffinity(0)),
                        help="CPUs of the local Ray for run 3 (default: this process's cores)")
    args = parser.parse_args()
    import ray

    threads = framework_threads()
    print(f"{args.suite} ({args.profile}); {threads} thread(s) per cell, {args.cpus} CPUs "
          "(timings on this machine as it is: other load shows in the wall times)")

    local_wall, local, records = run_suite(args.suite, args.profile, executor_named("local"))
    cells = len(records)
    print(f"local                    : {local_wall:7.1f} s in all, cells {local.seconds:6.1f} s ({cells} cells)")

    def start_ray(cpus: int) -> None:
        started = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        print(f"ray start ({cpus} CPUs)      : {time.perf_counter() - started:7.1f} s")

    # As many CPUs as a cell's threads: one cell at a time with local's threads, so only Ray differs.
    start_ray(threads)
    one = executor_named("ray", threads_per_cell=threads)
    one_wall, one_timed, _ = run_suite(args.suite, args.profile, one)
    print(f"ray, one cell at a time  : {one_wall:7.1f} s in all, cells {one_timed.seconds:6.1f} s")
    per_cell = (one_timed.seconds - local.seconds) / cells
    gaps = dispatch_gaps(one.timings)
    print(f"ray overhead per cell    : {per_cell:7.2f} s (a: cells' wall time, ray - local, per cell; target < 0.5)")
    print(f"  dispatch + transfer    : {statistics.mean(gaps):7.3f} s per cell (b); first cell {gaps[0]:.2f} s "
          f"(a new worker process starts), the others median {statistics.median(gaps[1:]):.3f} s")
    ray.shutdown()

    start_ray(args.cpus)
    many = executor_named("ray", threads_per_cell=1)
    many_wall, many_timed, many_records = run_suite(args.suite, args.profile, many)
    print(f"ray, threads_per_cell=1  : {many_wall:7.1f} s in all, cells {many_timed.seconds:6.1f} s; "
          f"at most {overlapping(many.timings)} cells running at once")
    queued = ", ".join(f"{record['queued_seconds']:.1f}" for record in many_records)
    print(f"  queued_seconds per cell: {queued}")
    ray.shutdown()


if __name__ == "__main__":
    main()
