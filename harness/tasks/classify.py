"""The classification task: train each model of the suite, measure it, mirror the report's table.

Cells are model x backend x device x seed. A cell builds the spec on its backend (the parameter
count must equal the spec's, or the cell fails), trains with the suite's settings on in-memory
arrays, and records accuracies (percent, as the report prints them), times, history and confusion
matrix. Rendering reads stored records only.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from harness.backends.base import SilentObserver
from harness.backends.metrics import seconds_to_target
from harness.cells import Cell, CellResult, RunContext, StoredCell
from harness.report import plots, tables
from harness.tasks.base import Task

if TYPE_CHECKING:
    from rich.console import Console

    from harness.backends.base import Backend, TrainObserver
    from harness.data import Splits
    from harness.suite.schema import ModelEntry, Suite


class ClassifyOptions(BaseModel):
    """Settings of the classification task."""

    model_config = ConfigDict(extra="forbid")

    save_weights: bool = Field(False, description="Keep each trained model in its cell folder for later suites.")
    plots: bool = Field(True, description="Write learning curves and confusion matrices per cell.")


@functools.lru_cache(maxsize=4)
def load_splits(dataset: str, validation_split: float, split_seed: int, train_samples: int | None,
                test_samples: int | None) -> "Splits":
    """The suite's data split, loaded once per process and shared by every cell that uses it."""
    from harness import data

    return data.split(data.load(dataset), validation_split=validation_split, seed=split_seed,
                      train_samples=train_samples, test_samples=test_samples)


def suite_splits(suite: "Suite") -> "Splits":
    settings = suite.data
    return load_splits(settings.dataset, settings.validation_split, settings.split_seed, settings.train_samples,
                       settings.test_samples)


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy in percent."""
    return 100.0 * float(np.mean(predicted == labels))


def confusion(predicted: np.ndarray, labels: np.ndarray, classes: int = 10) -> list[list[int]]:
    """Counts of (true, predicted) pairs: rows are true classes."""
    counts = np.bincount(labels * classes + predicted, minlength=classes * classes)
    return counts.reshape(classes, classes).tolist()


def spec_columns(model: "ModelEntry") -> dict[str, Any]:
    """The columns every table takes from the spec alone."""
    return {"params": model.params, "flops": model.flops, "depth": model.depth, "max_width": model.max_width,
            "widths": " ".join(str(w) for w in model.hidden_widths), "architecture": model.architecture}


def reference_columns(model: "ModelEntry") -> dict[str, Any]:
    ref = model.reference
    return {"ref_params": ref.params, "ref_test_accuracy": ref.test_accuracy, "ref_train_accuracy": ref.train_accuracy,
            "ref_cpu_seconds": ref.cpu_seconds, "ref_gpu_seconds": ref.gpu_seconds}


def train_and_measure(
    backend: "Backend", model_spec: "ModelEntry", suite: "Suite", *, epochs: int, seed: int, device: str,
    observer: "TrainObserver", weights_dir: Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Build, check parity, train and evaluate one model; returns (record, artifacts, trained model).

    Shared by every task that trains a classifier (classification suites, architecture search).
    """
    splits = suite_splits(suite)
    model = backend.build(model_spec, seed=seed, device=device)
    built = backend.count_params(model)
    if built != model_spec.params:
        raise RuntimeError(
            f"parameter parity: {backend.name} built {built:,} parameters, the spec has {model_spec.params:,}"
        )
    fit = backend.fit(model, splits, suite.train, epochs=epochs, seed=seed, device=device, observer=observer)
    target = suite.train.target_accuracy
    fits = [fit]
    for _ in range(suite.repeats - 1):
        # Repeats retrain a fresh model with the same seed only to time it: a spread for compare's noise test.
        again = backend.build(model_spec, seed=seed, device=device)
        fits.append(backend.fit(again, splits, suite.train, epochs=epochs, seed=seed, device=device,
                                observer=SilentObserver()))
    seconds = [repeat.seconds for repeat in fits]
    to_target = [seconds_to_target(repeat.history, target) for repeat in fits]
    train_seconds = float(np.median(seconds))
    train_predicted = backend.predict(model, splits.x_train, device=device)
    test_predicted = backend.predict(model, splits.x_test, device=device)
    last = fit.history[-1]
    record = {
        **spec_columns(model_spec),
        "epochs": epochs,
        "train_samples": len(splits.y_train),
        "val_samples": len(splits.y_val),
        "test_samples": len(splits.y_test),
        "train_accuracy": accuracy(train_predicted, splits.y_train),
        "val_accuracy": None if last.val_accuracy is None else 100.0 * last.val_accuracy,
        "test_accuracy": accuracy(test_predicted, splits.y_test),
        "final_train_loss": last.train_loss,
        "final_val_loss": last.val_loss,
        "train_seconds": train_seconds,
        "seconds_per_epoch": train_seconds / epochs,
        "target_accuracy": target,
        # Time to accuracy (AlgoPerf): None when the target is unset or was not reached.
        "seconds_to_target": None if None in to_target else float(np.median(to_target)),
        "train_path": fit.path,
        **reference_columns(model_spec),
    }
    artifacts: dict[str, Any] = {
        "history": [metrics.as_dict() for metrics in fit.history],
        "confusion": confusion(test_predicted, splits.y_test),
        "backend_environment": backend.environment(device),
    }
    if len(seconds) > 1:
        artifacts["timings"] = {"train_seconds": seconds, "seconds_per_epoch": [t / epochs for t in seconds]}
        if None not in to_target:
            artifacts["timings"]["seconds_to_target"] = to_target
    if weights_dir is not None:
        artifacts["weights"] = str(backend.save(model, weights_dir))
    return record, artifacts, model


class ClassifyTask(Task):
    """Tables 3.1, 3.2, 4.1, 4.3 and 4.4 of the report."""

    name = "classify"
    Options = ClassifyOptions
    columns = ("suite", "model", "backend", "device", "seed", "params", "flops", "depth", "max_width", "widths",
               "epochs", "train_samples", "val_samples", "test_samples", "train_accuracy", "val_accuracy",
               "test_accuracy", "train_seconds", "seconds_per_epoch", "seconds_to_target", "train_path", "status",
               "error")

    def plan(self, suite: "Suite") -> list[Cell]:
        return self.matrix_cells(suite, [(model.name, {}) for model in suite.models])

    def run(self, cell: Cell, context: RunContext) -> CellResult:
        from harness.backends import get_backend
        from harness.suite.schema import Suite

        suite = Suite.model_validate(cell.config)
        model_spec = suite.model(cell.model)
        backend = get_backend(cell.backend)
        device = backend.resolve_device(cell.device)
        epochs = model_spec.epochs or suite.train.epochs
        context.observer.epochs = epochs
        options = self.options(suite)
        folder = context.artifact_dir(cell)
        record, artifacts, _ = train_and_measure(
            backend, model_spec, suite, epochs=epochs, seed=cell.seed, device=device, observer=context.observer,
            weights_dir=folder if options.save_weights else None,
        )
        record["device"] = device
        if options.plots:
            label = f"{cell.model} ({cell.backend}, {device}, seed {cell.seed})"
            artifacts["figures"] = [
                str(plots.learning_curves(artifacts["history"], f"Learning curves: {label}",
                                          folder / "learning_curves.png").relative_to(context.run_dir)),
                str(plots.confusion_matrix(artifacts["confusion"], class_names(suite), f"Confusion matrix: {label}",
                                           folder / "confusion_matrix.png").relative_to(context.run_dir)),
            ]
        return CellResult("ok", record, artifacts)

    def summary(self, result: CellResult) -> str:
        r = result.record
        return (f"{r.get('params', 0):,} params, test {r['test_accuracy']:.2f}%, "
                f"train {r['train_accuracy']:.2f}%, {r['train_seconds']:.1f} s")

    def render(self, suite: "Suite", cells: list[StoredCell], out_dir: Path, console: "Console | None") -> list[Path]:
        frame = records_frame(cells)
        if frame.empty:
            return []
        table = report_table(frame)
        written = tables.write_table(table, out_dir, "table", f"{suite.title} ({suite.mirrors})", console,
                                     note=TABLE_NOTE, console_columns=[c for c in CONSOLE_COLUMNS if c in table])
        if frame["backend"].nunique() > 1:
            written += tables.write_table(backends_table(frame), out_dir, "backends",
                                          f"{suite.title}: backends side by side", console)
        written += comparison_plots(suite, frame, out_dir)
        return written


CONSOLE_COLUMNS = ["Model", "Backend", "Device", "Params", "Test acc %", "Report test %", "Δ test", "Train acc %",
                   "Train s", "Report s", "s/epoch", "s to target"]
TABLE_NOTE = ("Δ = measured − report. Accuracies in percent; report CPU seconds were measured on an "
              "Intel i7-10700, ours on the machine in the run's environment. s to target: training seconds "
              "until validation accuracy first reached the suite's target (empty: not reached).")


def class_names(suite: "Suite") -> list[str]:
    from harness.data import DATASETS

    return list(DATASETS[suite.data.dataset].class_names)


def records_frame(cells: list[StoredCell]) -> pd.DataFrame:
    """The finished cells' records (failed cells keep their row, with empty measurements)."""
    rows = [{**stored.record, "status": stored.result.status, "error": stored.result.error} for stored in cells]
    return pd.DataFrame(rows)


def report_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The report's table layout, one row per model x backend x device (seeds averaged)."""
    keys = ["model", "backend", "device"]
    ok = frame[frame["status"] == "ok"]
    grouped = ok.groupby(keys, sort=False)
    mean = grouped[["test_accuracy", "train_accuracy", "train_seconds", "seconds_per_epoch"]].mean()
    # Mean over seeds that reached the target; shown where a target is set (older records have none).
    timed = "target_accuracy" in ok and ok["target_accuracy"].notna().any()
    to_target = grouped["seconds_to_target"].mean() if timed else None
    first = grouped[["params", "depth", "max_width", "widths", "epochs", "ref_params", "ref_test_accuracy",
                     "ref_train_accuracy", "ref_cpu_seconds", "ref_gpu_seconds"]].first()
    seeds = grouped.size().rename("seeds")
    std = grouped["test_accuracy"].std().rename("test_std")
    table = pd.concat([first, mean, seeds, std], axis=1).reset_index()
    reference_seconds = [
        row.ref_gpu_seconds if row.device == "cuda" else row.ref_cpu_seconds for row in table.itertuples()
    ]
    out = pd.DataFrame({
        "Model": table["model"],
        "Backend": table["backend"],
        "Device": table["device"],
        "Params": table["params"].astype(int),
        "Report params": table["ref_params"],
        "Depth": table["depth"].astype(int),
        "Max width": table["max_width"].astype(int),
        "Widths": table["widths"],
        "Epochs": table["epochs"].astype(int),
        "Test acc %": table["test_accuracy"],
        "Report test %": table["ref_test_accuracy"],
        "Δ test": [tables.difference(a, b) for a, b in zip(table["test_accuracy"], table["ref_test_accuracy"])],
        "Train acc %": table["train_accuracy"],
        "Report train %": table["ref_train_accuracy"],
        "Train s": table["train_seconds"],
        "Report s": reference_seconds,
        "s/epoch": table["seconds_per_epoch"],
    })
    if to_target is not None:
        targets = grouped["target_accuracy"].first().to_numpy()
        out["s to target"] = to_target.to_numpy()
        out["Target %"] = targets
    if (table["seeds"] > 1).any():
        out.insert(out.columns.get_loc("Report test %"), "± std", table["test_std"])
    return out


def backends_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Backends side by side per model and device, with the parameter parity check."""
    ok = frame[frame["status"] == "ok"]
    metrics = ["params", "train_accuracy", "test_accuracy", "train_seconds", "seconds_per_epoch"]
    pivot = ok.groupby(["model", "device", "backend"], sort=False)[metrics].mean().unstack("backend")
    backends = list(ok["backend"].unique())
    labels = {"params": "params", "train_accuracy": "train %", "test_accuracy": "test %", "train_seconds": "s",
              "seconds_per_epoch": "s/epoch"}
    out = pd.DataFrame({"Model": [m for m, _ in pivot.index], "Device": [d for _, d in pivot.index]})
    for metric in metrics:
        for backend in backends:
            values = pivot[(metric, backend)].to_numpy()
            out[f"{labels[metric]} {backend}"] = values.astype(int) if metric == "params" else values
    params = pivot["params"].to_numpy()
    out["Params equal"] = [bool(np.all(row == row[0])) for row in params]
    mismatched = out[~out["Params equal"]]
    if not mismatched.empty:
        # Parity is the point of running both backends from one spec: a mismatch is an error.
        raise RuntimeError(f"parameter parity broken for {', '.join(mismatched['Model'])}")
    return out


def comparison_plots(suite: "Suite", frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Accuracy vs parameters, time vs parameters and vs depth; one series per backend and device."""
    ok = frame[frame["status"] == "ok"]
    reference = [m for m in suite.models if m.reference.test_accuracy is not None]
    series = {
        f"{backend}, {device}": group.groupby("model", sort=False).mean(numeric_only=True)
        for (backend, device), group in ok.groupby(["backend", "device"], sort=False)
    }

    def points(column: str, x: str) -> dict[str, tuple[list, list, list]]:
        return {name: (list(g[x]), list(g[column]), list(g.index)) for name, g in series.items()}

    written = [plots.comparison(
        points("test_accuracy", "params"),
        ([m.params for m in reference], [m.reference.test_accuracy for m in reference], [m.name for m in reference]),
        xlabel="parameters", ylabel="test accuracy (%)", log_x=True,
        title=f"{suite.title}: test accuracy vs parameters", path=out_dir / "accuracy_vs_params.png",
    )]
    timed = [m for m in suite.models if m.reference.cpu_seconds is not None]
    for x, label in (("params", "parameters"), ("depth", "depth (layers with parameters, output excluded)")):
        written.append(plots.comparison(
            points("train_seconds", x),
            ([getattr(m, x) for m in timed], [m.reference.cpu_seconds for m in timed], [m.name for m in timed]),
            xlabel=label, ylabel="training time (s)", log_x=x == "params",
            title=f"{suite.title}: training time vs {x} (report: its CPU)", path=out_dir / f"time_vs_{x}.png",
        ))
    return written


TASK = ClassifyTask()
