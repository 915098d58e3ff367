"""The exact linear-separability check on MNIST digit pairs, in parallel processes, timed.

    python benchmarks/bench_separability.py [--pairs 0-1,2-3,...] [--time-limit S] [--workers N]
                                            [--deadline S] [--device cpu|cuda] [--full-forms]

For each pair (default: all 45) the report's perceptron is trained first (all pairs together, 1000-update
cap, zero initial weights, on ``--device``), as the ``perceptron`` task does: its hyperplane is checked
as a certificate and else starts the cutting-plane LP, and whether it converged chooses which full LP
form goes first. Then :func:`harness.paper.algorithms.separability.decide_cached` runs in a pool of worker
processes (HiGHS solves one LP per process). ``--full-forms`` skips the hyperplane and the cutting
plane: the full LPs alone, as before issue 12. Prints each pair's verdict, form and solver seconds, and the
totals. Verdicts land in the harness cache (``$HARNESS_DATA/separability``), where the
``perceptron`` suite finds them: a machine with many cores can decide all pairs once for every later
run. Workers still busy at ``--deadline`` seconds are stopped and their pairs reported as not done.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _pair_rows(pair: tuple[int, int]):
    from harness import data
    from harness.paper.algorithms import perceptron

    # The same rows as the perceptron suite's full profile: the whole training pool of harness.data.split.
    splits = data.split(data.load("mnist", log=lambda message: None), validation_split=0.0, seed=0)
    return perceptron.pair_data(splits.x_train, splits.y_train, pair)


def _decide(job: tuple) -> tuple[tuple[int, int], dict, float]:
    from harness.paper.algorithms import separability

    pair, order, time_limit, hyperplane = job
    rows, signs = _pair_rows(pair)
    start = time.perf_counter()
    if hyperplane is None:  # --full-forms: the full LPs only, and no cache
        verdict = separability.decide(rows, signs, time_limit=time_limit, order=order, cutting_plane=False)
    else:
        verdict = separability.decide_cached(rows, signs, time_limit=time_limit, order=order, hyperplane=hyperplane,
                                             label=f"mnist {pair[0]},{pair[1]} ({len(rows)} samples)")
    return pair, verdict.as_dict(), time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default=None, help="e.g. 0-1,2-3 (default: all 45)")
    parser.add_argument("--time-limit", type=float, default=180.0, help="seconds per LP form and pair")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--deadline", type=float, default=None, help="stop waiting after this many seconds")
    parser.add_argument("--device", default="cpu", help="where the perceptron that picks the order runs")
    parser.add_argument("--full-forms", action="store_true", help="the full LP forms only (no hyperplane, no cache)")
    args = parser.parse_args()
    pairs = ([tuple(int(d) for d in item.split("-")) for item in args.pairs.split(",")] if args.pairs
             else list(combinations(range(10), 2)))

    from harness import data
    from harness.paper.algorithms import perceptron

    splits = data.split(data.load("mnist", log=lambda message: None), validation_split=0.0, seed=0)
    trained = perceptron.train_pairs(splits.x_train, splits.y_train, [perceptron.Run(pair, 0.08) for pair in pairs],
                                     device=args.device)
    jobs = []
    for pair, result in zip(pairs, trained):
        order = ("direct", "hull") if result.converged else ("hull", "direct")
        jobs.append((pair, order, args.time_limit, None if args.full_forms else result.hyperplane))
    print(f"{len(jobs)} pairs, {args.workers} workers, {args.time_limit:g} s per form", flush=True)

    start = time.perf_counter()
    done: dict[tuple[int, int], dict] = {}
    # spawn: the parent may hold a CUDA context, which forked children must not inherit.
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        pending = pool.imap_unordered(_decide, jobs)
        while len(done) < len(jobs):
            remaining = None if args.deadline is None else args.deadline - (time.perf_counter() - start)
            if remaining is not None and remaining <= 0:
                break
            try:
                pair, verdict, seconds = pending.next(timeout=remaining)
            except multiprocessing.TimeoutError:
                break
            done[pair] = verdict
            tried = "; ".join(f"{a['form']} {a['outcome']} {a['seconds']:.0f} s" for a in verdict["attempts"])
            cached = " (cached)" if verdict["cached"] else ""
            print(f"  ({pair[0]},{pair[1]}) {verdict['verdict']:<11} by {verdict['form'] or '-':<6} "
                  f"{verdict['seconds']:7.1f} s solver{cached}: {tried}", flush=True)
        pool.terminate()
    wall = time.perf_counter() - start
    counts = {name: sum(v["verdict"] == name for v in done.values())
              for name in ("separable", "inseparable", "undecided")}
    missing = [f"({a},{b})" for a, b in pairs if (a, b) not in done]
    print(f"wall {wall:.0f} s; {counts}; not done: {', '.join(missing) or 'none'}")
    print("separable:", " ".join(f"({a},{b})" for (a, b), v in sorted(done.items()) if v["verdict"] == "separable"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
