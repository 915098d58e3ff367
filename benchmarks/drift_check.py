"""How often the drift check catches a slow drift, and how often it flags nights of unchanged code.

    PYTHONPATH=. python benchmarks/drift_check.py [--weeks 100] [--noise 0.05] [--per-night 0.03]

Each trial stores, in a fresh results store, four baseline runs (pooled, as ``harness baseline
update runs=4`` does) and then seven nights, faking their timings rather than training: every run's
training time is 10 s times the drift so far, times a run-to-run factor drawn with the given relative
spread (5 %: the typical spread of the committed baseline's pooled CPU runs), its epochs varying a
third as much. The check runs on the stored runs exactly as ``harness nightly`` runs it. Prints the
share of drifting weeks caught and of same-code weeks flagged.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.compare import baselines  # noqa: E402
from harness.compare.results import pool  # noqa: E402
from harness.history import drift  # noqa: E402
from harness.store import ResultsStore  # noqa: E402
from tests.history_runs import stored_run  # noqa: E402


def week_flagged(folder: Path, per_night: float, noise: float, rng: random.Random) -> bool:
    for index in range(4):
        stored_run(folder, f"base{index}", index, "ci", noise=noise, rng=rng)
    for night in range(drift.DEFAULT_NIGHTS):
        stored_run(folder, f"night{night}", 10 + night, "ci", seconds=10.0 * (1 + per_night) ** night,
                   noise=noise, rng=rng)
    with ResultsStore(folder / "results.db") as store:
        runs = baselines.runs_of(store, "demo")
    return any(trend.drifting for trend in drift.check(pool(runs[:4]), runs[4:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=100)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--per-night", type=float, default=0.03)
    args = parser.parse_args()
    rng = random.Random(2026)
    with tempfile.TemporaryDirectory() as scratch:
        for label, per_night in (("drifting", args.per_night), ("same code", 0.0)):
            flagged = sum(week_flagged(Path(scratch) / f"{label}{week}", per_night, args.noise, rng)
                          for week in range(args.weeks))
            print(f"{label:>9} ({100 * per_night:.0f} %/night, noise {100 * args.noise:.0f} %): "
                  f"{flagged}/{args.weeks} weeks flagged")


if __name__ == "__main__":
    main()
