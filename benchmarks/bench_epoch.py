"""One training epoch as `harness run` trains it, against a plain script of the same model, in one process.

    python benchmarks/bench_epoch.py [--backend torch|tensorflow|all] [--model mlp_baseline|cnn_baseline|all]
                                     [--repeats N] [--samples N] [--device cpu|cuda] [--plain-path]
                                     [--precision fp32|bf16|fp16] [--json FILE]

The harness side is what a user runs: the suite's first model as a classify cell (``train.epochs=1``),
through ``run_cell`` (the local executor's call) with the progress a terminal gets (rich bars, live,
drawn to a terminal console that writes to /dev/null). Its time is the cell's recorded
``train_seconds`` (the training loop with the per-epoch validation pass, the span the plain script's
clock covers too); the whole cell (building, predicting train and test sets, figures) is printed beside
it. ``--plain-path`` runs the cell with ``train.fast=false``.

``--precision bf16`` (or fp16) trains the harness's cell in that precision (``train.precision``) and
times the plain script twice per repeat, in float32 and in the same precision (PyTorch's autocast
recipe, Keras' mixed policy): ``ratio`` is harness / plain in the same precision, ``vs fp32`` is
harness / plain float32, the speed-up a user gets over the script they had. The CPU's native bf16
and fp16 flags are printed with the figures.

Each repeat times the plain script and the harness back to back (alternating which goes first) on the
same data, and the ratio harness / plain is reported as a median over repeats, so machine noise that
affects both cancels out. The process CPU time of each epoch is recorded too (the harness side's from
its observer's epoch start to the epoch's end, the plain side's around its call): on a shared machine
whose other load swings the wall clock by tens of percent, the CPU-time ratio still says whether the
harness does more work. Targets (issue 12, on the 2-core development CPU): torch MLP baseline <= 0.80, CNN baseline
<= 0.95; TensorFlow <= 1.0. On a GPU (issue 25) the fast path's CUDA graph should make the harness's epoch
at most 0.5x the plain eager loop's. ``--json`` writes the medians and every repeat (benchmarks/device_check.py
reads it).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rich.console import Console  # noqa: E402

from harness.backends import get_backend  # noqa: E402
from harness.backends.metrics import EpochMetrics  # noqa: E402
from harness.cells import RunContext  # noqa: E402
from harness.environment import cpu_model, native_cpu_precisions  # noqa: E402
from harness.executors.local import run_cell  # noqa: E402
from harness.progress import CellObserver, RunProgress  # noqa: E402
from harness.suite.overrides import Override  # noqa: E402
from harness.tasks import load_suite, task_for  # noqa: E402
from harness.tasks.training import suite_splits  # noqa: E402

PLAIN = {"torch": "plain_torch", "tensorflow": "plain_keras"}
TARGETS = {("torch", "mlp_baseline"): 0.80, ("torch", "cnn_baseline"): 0.95,
           ("tensorflow", "mlp_baseline"): 1.0, ("tensorflow", "cnn_baseline"): 1.0}
#: On a GPU, where a plain loop waits on kernel launches, the fast path is to halve the epoch.
GPU_TARGET = 0.5
#: Training images of the warm-up epoch (fewer where the measured epochs have fewer).
WARMUP_SAMPLES = 2000


def target(backend: str, model: str, device: str) -> float:
    """The ratio harness / plain the epoch should stay within on ``device``."""
    return GPU_TARGET if device.startswith("cuda") else TARGETS[(backend, model)]


def cell_suite(backend: str, suite_name: str, device: str, samples: int | None, fast: bool, precision: str = "fp32"):
    """The suite as `harness run suite=NAME backend=B device=D train.epochs=1` resolves it."""
    overrides = [("matrix.backends", [backend]), ("matrix.devices", [device]), ("train.epochs", 1),
                 ("train.fast", fast), ("train.precision", precision)] + (
        [("data.train_samples", samples)] if samples else [])
    return load_suite(suite_name, "full", [Override(key, value, "bench_epoch") for key, value in overrides])


class TimedObserver(CellObserver):
    """The terminal's observer, also reading the process's CPU clock when the epoch starts and ends."""

    cpu_seconds = 0.0

    def start_epoch(self, epoch: int, batches: int) -> None:
        self.cpu_started = time.process_time()
        super().start_epoch(epoch, batches)

    def end_epoch(self, metrics: EpochMetrics) -> None:
        TimedObserver.cpu_seconds = time.process_time() - self.cpu_started
        super().end_epoch(metrics)


class TimedProgress(RunProgress):
    def start_cell(self, label: str, epochs: int | None = None) -> CellObserver:
        super().start_cell(label, epochs)
        return TimedObserver(self, epochs)


def harness_epoch(suite, terminal: Console) -> tuple[float, float, float, str]:
    """(recorded train seconds, their CPU seconds, whole cell seconds, training path) for the suite's first
    model."""
    cell = task_for("classify").plan(suite)[0]
    with tempfile.TemporaryDirectory() as folder, TimedProgress(terminal, 1) as progress:
        context = RunContext(Path(folder), progress, Path(folder))
        started = time.perf_counter()
        result = run_cell(cell, context)
        whole = time.perf_counter() - started
        progress.finish_cell("done")
    if not result.ok:
        raise RuntimeError(f"the harness cell failed: {result.error}")
    return result.record["train_seconds"], TimedObserver.cpu_seconds, whole, result.record["train_path"]


def plain_epoch(backend: str, model: str, splits, device: str, precision: str = "fp32") -> float:
    plain = importlib.import_module(PLAIN[backend])
    if backend == "torch":
        return plain.run_epoch(model, splits, device=device, precision=precision)
    return plain.run_epoch(model, splits, precision=precision)


def measure(backend: str, model: str, args: argparse.Namespace, terminal: Console) -> dict:
    precision = args.precision
    suite = cell_suite(backend, model, args.device, args.samples, not args.plain_path, precision)
    splits = suite_splits(suite)
    get_backend(backend)  # sets the framework's threads first: the plain script runs with the same ones
    # Warm up every path on a slice first: the first epoch in a process pays for page faults, kernel
    # selection and (TensorFlow) tracing, which would otherwise land on whichever runs first.
    warm = cell_suite(backend, model, args.device, min(WARMUP_SAMPLES, args.samples or WARMUP_SAMPLES),
                      not args.plain_path, precision)
    plains = list(dict.fromkeys(("fp32", precision)))  # the plain script in float32, and in the harness's precision
    for plain in plains:
        plain_epoch(backend, model, suite_splits(warm), args.device, plain)
    harness_epoch(warm, terminal)
    rows = []
    sides = [f"plain {plain}" for plain in plains] + ["harness"]
    for repeat in range(args.repeats):
        # Each side goes first in turn, so a machine that slows down over a repeat favours none of them.
        order = sides[repeat % len(sides):] + sides[: repeat % len(sides)]
        seconds, cpu, whole, path = {}, {}, 0.0, ""
        for which in order:
            if which == "harness":
                seconds[which], cpu[which], whole, path = harness_epoch(suite, terminal)
            else:
                cpu_started = time.process_time()
                seconds[which] = plain_epoch(backend, model, splits, args.device, which.split()[1])
                cpu[which] = time.process_time() - cpu_started
        same = f"plain {precision}"
        rows.append({"plain": seconds[same], "harness": seconds["harness"], "whole": whole,
                     "ratio": seconds["harness"] / seconds[same], "cpu_ratio": cpu["harness"] / cpu[same],
                     "plain_fp32": seconds["plain fp32"], "vs_fp32": seconds["harness"] / seconds["plain fp32"]})
        versus = "" if precision == "fp32" else (f"; plain fp32 {seconds['plain fp32']:.2f} s, "
                                                 f"harness / plain fp32 {rows[-1]['vs_fp32']:.3f}")
        print(f"  {backend:<10} {model:<13} repeat {repeat + 1}: plain {seconds[same]:.2f} s, harness "
              f"{seconds['harness']:.2f} s ({path}; whole cell {whole:.1f} s), ratio {rows[-1]['ratio']:.3f} "
              f"(CPU time ratio {rows[-1]['cpu_ratio']:.3f}){versus}", flush=True)
    median = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
    return {"backend": backend, "model": model, "device": args.device, "path": path, **median,
            "target": target(backend, model, args.device), "repeats": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch", choices=["torch", "tensorflow", "all"])
    parser.add_argument("--model", default="all", choices=["mlp_baseline", "cnn_baseline", "all"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=None, help="training pool size (default: all 60,000)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--plain-path", action="store_true", help="the harness with train.fast=false")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                        help="the harness's train.precision; the plain script runs in fp32 and in this one")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    # A terminal's progress display, drawn (and thrown away) exactly as on a user's screen.
    terminal = Console(file=open(os.devnull, "w"), force_terminal=True, width=120)  # noqa: SIM115
    backends = ["torch", "tensorflow"] if args.backend == "all" else [args.backend]
    models = ["mlp_baseline", "cnn_baseline"] if args.model == "all" else [args.model]
    rows = [measure(b, m, args, terminal) for b in backends for m in models]
    mixed = args.precision != "fp32"
    print(f"\nmedians of {args.repeats} repeats" + (f"; harness and plain in {args.precision}, CPU {cpu_model()}, "
                                                    f"native: {native_cpu_precisions()}" if mixed else ""))
    print(f"{'backend':<11}{'model':<14}{'plain s':>9}{'harness s':>11}{'ratio':>8}{'CPU ratio':>11}{'target':>8}"
          + (f"{'fp32 s':>9}{'vs fp32':>9}" if mixed else "") + "  path")
    worst_miss = False
    for row in rows:
        worst_miss |= row["ratio"] > row["target"]
        print(f"{row['backend']:<11}{row['model']:<14}{row['plain']:>9.2f}{row['harness']:>11.2f}{row['ratio']:>8.3f}"
              f"{row['cpu_ratio']:>11.3f}{row['target']:>8.2f}" + (f"{row['plain_fp32']:>9.2f}{row['vs_fp32']:>9.3f}"
                                                                   if mixed else "") + f"  {row['path']}")
    print("\nall targets met" if not worst_miss else "\nSLOWER THAN TARGET")
    if args.json:
        args.json.write_text(json.dumps({"repeats": args.repeats, "samples": args.samples, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
