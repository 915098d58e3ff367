"""Export a run's timings in pytest-benchmark's JSON format, so its tools read harness results.

    python -m harness.compare.benchmark_export SOURCE OUT.json [metric=NAME]
    pytest-benchmark compare OLD.json OUT.json        (or --benchmark-compare in a pytest run)

SOURCE is anything ``harness compare`` reads (run id, results.json, run folder, baseline file). Each
comparison row (model x backend x device, seeds and repeats pooled) becomes one benchmark whose
rounds are the row's measurements of ``metric`` (seconds; by default the timing the suite's
``[regression]`` thresholds judge: ``train_seconds``, or pca's and the perceptron's ``seconds``);
its accuracy and parameter count go into ``extra_info``. Machine and commit come from the run's stored environment, not from the
machine doing the export.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from harness.compare.results import RunResults, Side
from harness.compare.stats import SampleStats
from harness.errors import UserError
from harness.paths import atomic_write
from harness.thresholds import is_timing, parse_thresholds

#: The pytest-benchmark data format these files follow (its JSON 'version' field).
PYTEST_BENCHMARK_FORMAT = "5.1.0"


def benchmark_stats(values: list[float]) -> dict[str, Any]:
    """pytest-benchmark's ``stats`` block: its fields, computed the way its ``Stats`` class does."""
    summary = SampleStats.of(values)
    data = sorted(values)
    q1, q3 = _quartiles(data)
    iqr = q3 - q1
    low_fence, high_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    stddev_outliers = sum(1 for v in data if abs(v - summary.mean) > summary.stddev)
    iqr_outliers = sum(1 for v in data if v < low_fence or v > high_fence)
    total = sum(data)
    return {
        "min": summary.min, "max": summary.max, "mean": summary.mean, "stddev": summary.stddev,
        "rounds": summary.rounds, "median": summary.median, "iqr": iqr, "q1": q1, "q3": q3,
        "iqr_outliers": iqr_outliers, "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": min(v for v in data if v >= low_fence), "hd15iqr": max(v for v in data if v <= high_fence),
        "ops": summary.rounds / total if total else 0.0, "total": total, "data": list(values), "iterations": 1,
    }


def _quartiles(data: list[float]) -> tuple[float, float]:
    """Quartiles by pytest-benchmark's rule (Tukey's hinges for even counts), so its tables match."""
    n = len(data)
    if n == 1:
        return data[0], data[0]
    if n % 2 == 0:
        return statistics.median(data[: n // 2]), statistics.median(data[n // 2:])
    k, r = divmod(n, 4)
    if r == 1:
        return 0.25 * data[k - 1] + 0.75 * data[k], 0.75 * data[3 * k] + 0.25 * data[3 * k + 1]
    return 0.75 * data[k] + 0.25 * data[k + 1], 0.25 * data[3 * k + 1] + 0.75 * data[3 * k + 2]


def machine_info(environment: dict[str, Any]) -> dict[str, Any]:
    """pytest-benchmark's ``machine_info`` from a run's environment (what it was measured on)."""
    return {
        "node": environment.get("hostname", ""),
        "processor": environment.get("cpu", ""),
        "machine": "x86_64" if "x86_64" in str(environment.get("platform", "")) else "",
        "python_implementation": "CPython",
        "python_version": environment.get("python", ""),
        "system": "Linux" if "Linux" in str(environment.get("platform", "")) else "",
        "release": environment.get("platform", ""),
        "cpu": {"brand_raw": environment.get("cpu", ""), "count": environment.get("cpu_cores")},
        "harness": {key: environment.get(key) for key in ("harness", "torch", "tensorflow", "gpu", "image_id")
                    if environment.get(key) is not None},
        "calibration_seconds": (environment.get("calibration") or {}).get("seconds"),
    }


def commit_info(environment: dict[str, Any]) -> dict[str, Any]:
    return {"id": environment.get("git_commit") or "", "dirty": bool(environment.get("git_dirty")),
            "project": "harness", "branch": environment.get("git_branch", "")}


def to_pytest_benchmark(results: RunResults, metric: str = "train_seconds") -> dict[str, Any]:
    """The pytest-benchmark document for one run."""
    benchmarks = []
    for row, cells in results.rows().items():
        side = Side(tuple(cells))
        values = list(side.sample(metric))
        if not values:
            continue
        first = cells[0]
        accuracy = side.sample("test_accuracy")
        params = {"model": first.model, "backend": first.backend, "device": first.device}
        benchmarks.append({
            "group": f"{results.suite}: {metric}",
            "name": f"{metric}[{first.model}-{first.backend}-{first.device}]",
            "fullname": f"{results.suite}::{metric}[{first.model}-{first.backend}-{first.device}]",
            "params": params,
            "param": f"{first.model}-{first.backend}-{first.device}",
            "extra_info": {
                "run_id": results.run_id,
                "profile": results.profile,
                "row": row,
                "seeds": sorted({cell.seed for cell in cells}),
                "params": first.record.get("params"),
                "test_accuracy": statistics.fmean(accuracy) if accuracy else None,
            },
            "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": len(values), "max_time": 0.0,
                        "min_time": 0.0, "warmup": True},
            "stats": benchmark_stats(values),
        })
    return {
        "machine_info": machine_info(results.environment),
        "commit_info": commit_info(results.environment),
        "benchmarks": benchmarks,
        "datetime": results.created,
        "version": PYTEST_BENCHMARK_FORMAT,
    }


def judged_timing(results: RunResults) -> str:
    """The timing the run's suite is judged on (its first timing threshold), else ``train_seconds``."""
    thresholds = parse_thresholds(results.settings().fail)
    timings = [threshold.metric for threshold in thresholds if is_timing(threshold.metric)]
    return timings[0] if timings else "train_seconds"


def export(results: RunResults, path: Path, metric: str | None = None) -> Path:
    """Write the run's pytest-benchmark JSON to ``path`` (``metric`` by default the suite's judged
    timing, :func:`judged_timing`); a UserError if no row has it."""
    metric = metric or judged_timing(results)
    document = to_pytest_benchmark(results, metric)
    if not document["benchmarks"]:
        raise UserError(f"run {results.run_id} has no {metric!r} measurements to export")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(document, indent=2) + "\n")
    return path


def main(argv: list[str]) -> int:
    """``python -m harness.compare.benchmark_export SOURCE OUT.json [metric=NAME] [reports=DIR]``."""
    from harness.compare.baselines import resolve
    from harness.paths import reports_dir

    options = dict(arg.split("=", 1) for arg in argv if "=" in arg)
    positional = [arg for arg in argv if "=" not in arg]
    if len(positional) != 2:
        print(__doc__.splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        (results, *more) = resolve(positional[0], Path(options.get("reports", reports_dir())))
        if more:
            raise UserError(f"{positional[0]} holds several suites; export a run id or a results.json")
        path = export(results, Path(positional[1]), options.get("metric"))
    except UserError as error:
        print(f"harness: error: {error}", file=sys.stderr)
        return UserError.exit_code
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
