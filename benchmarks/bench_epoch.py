"""One training epoch through the harness against a plain script of the same model, in one process.

    python benchmarks/bench_epoch.py [--backend torch|tensorflow|all] [--model mlp_baseline|cnn_baseline|all]
                                     [--repeats N] [--samples N] [--device cpu|cuda]

Each repeat times the plain script and the harness back to back (alternating which goes first) on the
same data, and the ratio harness / plain is reported as a median over repeats, so machine noise
that affects both cancels out. The process CPU time of each call is recorded too: on a shared machine
whose other load swings the wall clock by tens of percent, the CPU-time ratio still says whether the
harness does more work. Target: the harness within 5% of the plain script (ratio <= 1.05).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import data  # noqa: E402
from harness.backends import get_backend  # noqa: E402
from harness.backends.base import SilentObserver  # noqa: E402
from harness.tasks import load_suite  # noqa: E402

PLAIN = {"torch": "plain_torch", "tensorflow": "plain_keras"}


def harness_epoch(backend_name: str, suite_name: str, splits, device: str) -> float:
    """Seconds for one epoch through the harness's backend (the same call the classify task makes)."""
    suite = load_suite(suite_name)
    backend = get_backend(backend_name)
    spec = suite.models[0]
    model = backend.build(spec, seed=0, device=device)
    result = backend.fit(model, splits, suite.train, epochs=1, seed=0, device=device, observer=SilentObserver())
    return result.seconds


def measure(backend_name: str, model_name: str, splits, repeats: int, device: str) -> dict:
    plain = importlib.import_module(PLAIN[backend_name])
    # Warm up both paths on a slice first: the first epoch in a process pays for page faults, kernel
    # selection and (TensorFlow) tracing, which would otherwise land on whichever runs first.
    warm = type(splits)(splits.x_train[:2000], splits.y_train[:2000], splits.x_val[:200], splits.y_val[:200],
                        splits.x_test[:200], splits.y_test[:200])
    plain.run_epoch(model_name, warm, device=device) if backend_name == "torch" else plain.run_epoch(model_name, warm)
    harness_epoch(backend_name, model_name, warm, device)
    harness_times, plain_times, ratios, cpu_ratios = [], [], [], []
    for repeat in range(repeats):
        order = ("plain", "harness") if repeat % 2 == 0 else ("harness", "plain")
        times, cpu = {}, {}
        for which in order:
            cpu_started = time.process_time()
            if which == "plain":
                times[which] = plain.run_epoch(model_name, splits, device=device) if backend_name == "torch" \
                    else plain.run_epoch(model_name, splits)
            else:
                times[which] = harness_epoch(backend_name, model_name, splits, device)
            cpu[which] = time.process_time() - cpu_started
        plain_times.append(times["plain"])
        harness_times.append(times["harness"])
        ratios.append(times["harness"] / times["plain"])
        cpu_ratios.append(cpu["harness"] / cpu["plain"])
        print(f"  {backend_name:<10} {model_name:<13} repeat {repeat + 1}: plain {times['plain']:.2f} s, "
              f"harness {times['harness']:.2f} s, ratio {ratios[-1]:.3f} (CPU time ratio {cpu_ratios[-1]:.3f})",
              flush=True)
    return {"backend": backend_name, "model": model_name, "plain_s": statistics.median(plain_times),
            "harness_s": statistics.median(harness_times), "ratio": statistics.median(ratios),
            "cpu_ratio": statistics.median(cpu_ratios)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch", choices=["torch", "tensorflow", "all"])
    parser.add_argument("--model", default="all", choices=["mlp_baseline", "cnn_baseline", "all"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=None, help="training pool size (default: all 60,000)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    splits = data.split(data.load("mnist"), validation_split=0.1, seed=0, train_samples=args.samples)
    backends = ["torch", "tensorflow"] if args.backend == "all" else [args.backend]
    models = ["mlp_baseline", "cnn_baseline"] if args.model == "all" else [args.model]
    rows = [measure(b, m, splits, args.repeats, args.device) for b in backends for m in models]
    print(f"\n{'backend':<11}{'model':<14}{'plain s (median)':>18}{'harness s (median)':>20}{'ratio (median)':>16}")
    for row in rows:
        print(f"{row['backend']:<11}{row['model']:<14}{row['plain_s']:>18.2f}{row['harness_s']:>20.2f}"
              f"{row['ratio']:>16.3f}{row['cpu_ratio']:>16.3f}")
    worst = max(row["ratio"] for row in rows)
    print(f"\nworst ratio {worst:.3f} (target <= 1.05): {'ok' if worst <= 1.05 else 'SLOWER THAN TARGET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
