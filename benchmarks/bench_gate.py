"""Does the regression gate cry wolf, and does it still bark? Real runs of the nightly profile.

    python benchmarks/bench_gate.py runs  --reports DIR [--suites mlp_baseline,cnn_baseline] [--pairs 5] [--slowed 2]
    python benchmarks/bench_gate.py judge --reports DIR [--baseline reports/baselines/cpu-nightly.json]
                                          [--compare normalize=auto] [--out gate-judged.json]

``runs`` runs each suite's nightly profile ``2 * pairs`` times as the code is, and ``slowed`` more times
with the timed work made 30 % slower (a sleep after each optimizer step, PCA fit and pass of the
perceptrons' loop, as long as 30 % of its own time: a monkeypatch in that run's process only, not an
option of the harness), each run in a fresh process, as users run a suite. Run ids go to
DIR/gate-runs.json. ``judge`` runs ``harness compare`` (the
command line, for its exit codes) on each same-code pair, on a plain run with 2 points taken off
every judged accuracy in its results.json (the non-timing thresholds of the suite), on
each slowed run alone (shown, not judged: one run may be "unconfirmed") and on the two slowed runs
as run and rerun (as ``harness nightly`` measures a suspect again), and the same kinds against the
committed baseline (where its entry pools several runs, one slowed run alone must be caught too); it
prints a table and writes DIR/gate-judged.json. Timings depend on the
machine's load: say what else ran.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLOWDOWN = 0.30
#: More ``harness compare`` arguments for every comparison of ``judge`` (``--compare normalize=auto``).
EXTRA: list[str] = []


def slow_down(owner: object, attribute: str, factor: float) -> None:
    """Sleep after each call of ``owner.attribute`` for ``factor`` x the time since the previous call
    ended (the work between calls, the call included); after a pause of a second or more (validation,
    another cell) the call's own time."""
    original = getattr(owner, attribute)
    last_end: list[float] = []

    def slowed(*args, **kwargs):
        called = time.perf_counter()
        result = original(*args, **kwargs)
        done = time.perf_counter()
        work = done - last_end[0] if last_end and done - last_end[0] < 1.0 else done - called
        time.sleep(factor * work)
        last_end[:] = [time.perf_counter()]
        return result

    setattr(owner, attribute, slowed)


def slow_down_timed_work(factor: float) -> None:
    """Make the work each task times ``factor`` slower: every optimizer step (the training tasks: Adam),
    every PCA fit, and every class pass of the perceptrons' joint loop (inside its timed loop)."""
    import torch

    from harness.algorithms import pca
    from harness.paper.algorithms import perceptron

    slow_down(torch.optim.Adam, "step", factor)
    slow_down(pca, "fit_pca", factor)
    for kernel in ("_float64_class", "_int8_class"):
        slow_down(perceptron._JointLoop, kernel, factor)


def runs(args: argparse.Namespace) -> None:
    """Each run in a fresh process, as ``harness run`` and ``harness nightly`` run a suite (a process that
    has run other suites before times differently: measured up to +50 % per row on a quiet machine)."""
    manifest_path = args.reports / "gate-runs.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    plan = [(suite, False) for _ in range(2 * args.pairs) for suite in args.suites]
    plan += [(suite, True) for _ in range(args.slowed) for suite in args.suites]
    for suite, slowed in plan:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "one", "--suites", suite, "--reports", str(args.reports),
                               *(["--slow"] if slowed else [])], cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{suite}: the run failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        run_id = done.stdout.strip().splitlines()[-1]
        entry = manifest.setdefault(suite, {"plain": [], "slowed": []})
        entry["slowed" if slowed else "plain"].append(run_id)
        entry.setdefault("wall_seconds", []).append(round(time.perf_counter() - started, 1))
        manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
        print(f"{suite} {'slowed' if slowed else 'plain'} {run_id} {time.perf_counter() - started:.0f} s", flush=True)


def one(args: argparse.Namespace) -> None:
    """One run of the suite's nightly profile in this process (slowed with ``--slow``); prints its id."""
    from rich.console import Console

    from harness import runner

    if args.slow:
        slow_down_timed_work(SLOWDOWN)
    console = Console(file=sys.stderr, width=120)
    outcome = runner.run(runner.RunRequest(args.suites[0], "nightly", resume="no", reports=args.reports), console)
    print(outcome.run.run_id, flush=True)


def harness_compare(reports: Path, *sources: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "harness", "compare", *sources, *EXTRA, f"reports={reports}"],
                          cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    summary = next((line for line in reversed(lines) if ": " in line and not line.startswith("harness:")), "")
    return done.returncode, summary


def judged_metrics(document: dict) -> list[str]:
    """The run's non-timing thresholds' metrics: its accuracies (test_accuracy; mtl's task1_/task2_;
    pca's first explained-variance ratio)."""
    from harness.thresholds import DEFAULT_FAIL, is_timing, parse_thresholds

    fail = (document.get("config", {}).get("regression") or {}).get("fail") or DEFAULT_FAIL
    return [threshold.metric for threshold in parse_thresholds(fail) if not is_timing(threshold.metric)]


def drop_accuracy(reports: Path, suite: str, run_id: str, points: float) -> Path:
    """A copy of the run's results.json with ``points`` taken off every cell's judged accuracies
    (percentage points; a metric in fractions, such as pca's ratio_1, loses ``points / 100``)."""
    from harness.thresholds import unit

    document = json.loads((reports / suite / run_id / "results.json").read_text())
    dropped = copy.deepcopy(document)
    dropped["run_id"] = f"{run_id}-drop{points:g}"
    for metric in judged_metrics(document):
        for cell in dropped["cells"]:
            if isinstance(cell["record"].get(metric), (int, float)):
                cell["record"][metric] -= points if unit(metric) == "%" else points / 100
    path = reports / "gate-dropped" / suite / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dropped, indent=1))
    return path


def accuracy(reports: Path, suite: str, run_id: str) -> dict[str, float]:
    """Every judged accuracy of the run by cell and metric (in points: fractions x 100)."""
    from harness.thresholds import unit

    document = json.loads((reports / suite / run_id / "results.json").read_text())
    return {(cell["key"], metric):
            cell["record"][metric] * (1 if unit(metric) == "%" else 100)
            for metric in judged_metrics(document) for cell in document["cells"]
            if isinstance(cell["record"].get(metric), (int, float))}


def judge(args: argparse.Namespace) -> None:
    from harness.compare.baseline_file import read_baseline

    manifest = json.loads((args.reports / "gate-runs.json").read_text())
    judged = []
    for suite, entry in manifest.items():
        plain, slowed = entry["plain"], entry["slowed"]
        pairs = list(zip(plain[0::2], plain[1::2]))
        differences = [max(abs(accuracy(args.reports, suite, a)[m] - accuracy(args.reports, suite, b)[m])
                           for m in accuracy(args.reports, suite, a)) for a, b in pairs]
        # (what, baseline, current, more arguments, the exit code a right gate gives; None: shown only)
        cases = [("same code", a, b, (), 0) for a, b in pairs]
        cases.append(("-2 points", plain[0], str(drop_accuracy(args.reports, suite, plain[1], 2.0)), (), 1))
        cases += [("30% slower, one run", plain[0], run, (), None) for run in slowed]
        cases.append(("30% slower, rerun", plain[0], slowed[0], (f"rerun={slowed[1]}",), 1))
        cases.append(("same code, rerun", plain[0], plain[1], (f"rerun={plain[3]}",), 0))
        if args.baseline is not None:
            committed = str(args.baseline)
            # Against a baseline pooled from several runs one slowed run is caught; against one run, it
            # is only unconfirmed (shown, not judged).
            pooled = len(read_baseline(args.baseline)[suite].runs) > 1
            cases += [("same code vs baseline", committed, run, (), 0) for run in plain[1:]]
            # What harness nightly does when a run shows a suspect: measure again, confirm only both.
            cases += [("same code vs baseline, rerun", committed, run, (f"rerun={again}",), 0)
                      for run, again in zip(plain[1:], plain[2:])]
            cases.append(("-2 points vs baseline", committed,
                          str(drop_accuracy(args.reports, suite, plain[-1], 2.0)), (), 1))
            cases += [("30% slower vs baseline, one run", committed, run, (), 1 if pooled else None) for run in slowed]
            cases.append(("30% slower vs baseline, rerun", committed, slowed[0], (f"rerun={slowed[1]}",), 1))
        for kind, baseline, current, more, expected in cases:
            code, summary = harness_compare(args.reports, baseline, current, *more)
            judged.append({"suite": suite, "case": kind, "baseline": baseline, "current": current, "more": list(more),
                           "exit": code, "expected": expected, "summary": summary})
            verdict = "-" if expected is None else ("ok" if code == expected else "WRONG")
            print(f"{verdict:5} {suite:13} {kind:32} exit {code} (want {'-' if expected is None else expected})  "
                  f"{Path(current).name:28} {summary}", flush=True)
        print(f"{suite}: largest accuracy difference over {len(pairs)} same-code pairs: "
              f"{max(differences):.2f} points ({', '.join(f'{d:.2f}' for d in differences)}); "
              f"run wall time {min(entry['wall_seconds']):.0f}-{max(entry['wall_seconds']):.0f} s", flush=True)
    (args.reports / args.out).write_text(json.dumps(judged, indent=1) + "\n")
    wrong = [j for j in judged if j["expected"] is not None and j["exit"] != j["expected"]]
    print(f"{sum(j['expected'] is not None for j in judged)} judged comparisons, {len(wrong)} wrong")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=("runs", "judge", "one"))
    parser.add_argument("--reports", type=Path, required=True)
    parser.add_argument("--suites", default="mlp_baseline,cnn_baseline")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--slowed", type=int, default=2)
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--slow", action="store_true", help="one: the run with the timed work 30 %% slower")
    parser.add_argument("--compare", action="append", default=[], metavar="KEY=VALUE",
                        help="judge: another harness compare argument for every comparison (repeatable)")
    parser.add_argument("--out", default="gate-judged.json", help="judge: the file in DIR the verdicts go to")
    args = parser.parse_args()
    EXTRA.extend(args.compare)
    sys.path.insert(0, str(ROOT))  # this checkout's harness, whatever the environment installed
    args.suites = [name for name in args.suites.split(",") if name]
    args.reports = args.reports.resolve()
    args.reports.mkdir(parents=True, exist_ok=True)
    {"runs": runs, "judge": judge, "one": one}[args.phase](args)


if __name__ == "__main__":
    main()
