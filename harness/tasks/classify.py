"""The classification task: train each model of the suite, measure it, mirror the report's table.

Cells are model x backend x device x seed. A cell builds the spec on its backend (the parameter
count must equal the spec's, or the cell fails), trains with the suite's settings on in-memory
arrays, and records accuracies (percent, as the report prints them), times, history and confusion
matrix. Rendering reads stored records only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import Field

from harness.cells import Cell, CellResult, RunContext, StoredCell
from harness.render import plots, tables
from harness.render.tables import Table
from harness.suite.models import StrictModel
from harness.tasks.base import CellWork, Task
from harness.tasks.training import class_names, finished_frame, train_and_measure, training_work

if TYPE_CHECKING:

    from harness.suite.schema import Suite


class ClassifyOptions(StrictModel):
    """Settings of the classification task."""

    save_weights: bool = Field(False, description="Keep each trained model in its cell folder for later suites.")
    plots: bool = Field(True, description="Write learning curves and confusion matrices per cell.")


class ClassifyTask(Task):
    """Tables 3.1, 3.2, 4.1, 4.3 and 4.4 of the report."""

    name = "classify"
    table_stems = ("table", "backends")
    Options = ClassifyOptions
    columns = ("suite", "model", "backend", "device", "seed", "params", "flops", "depth", "max_width", "widths",
               "epochs", "train_samples", "val_samples", "test_samples", "train_accuracy", "val_accuracy",
               "test_accuracy", "train_seconds", "seconds_per_epoch", "seconds_to_target", "train_path", "precision",
               "deterministic", "status", "error")

    def plan(self, suite: "Suite") -> list[Cell]:
        return self.matrix_cells(suite, [(model.name, {}) for model in suite.models])

    def work(self, suite: "Suite", cell: Cell) -> CellWork:
        model = suite.model(cell.model)
        return training_work(suite, model, model.epochs or suite.train.epochs)

    def run(self, cell: Cell, context: RunContext) -> CellResult:
        suite, options, backend, device = self.setup(cell)
        model_spec = suite.model(cell.model)
        epochs = model_spec.epochs or suite.train.epochs
        context.observer.epochs = epochs
        folder = context.artifact_dir(cell)
        record, artifacts, _ = train_and_measure(
            backend, model_spec, suite, epochs=epochs, seed=cell.seed, device=device, observer=context.observer,
            weights_dir=folder if options.save_weights else None,
        )
        record["device"] = device
        if options.plots:
            drawn = self.cell_figures(suite, StoredCell(cell, CellResult("ok", record, artifacts)), folder)
            artifacts["figures"] = [str(path.relative_to(context.run_dir)) for path in drawn]
        return CellResult("ok", record, artifacts)

    def cell_figures(self, suite: "Suite", stored: StoredCell, folder: Path) -> list[Path]:
        """A cell's learning curves and confusion matrix, from its stored history and confusion counts."""
        cell, artifacts = stored.cell, stored.result.artifacts
        label = f"{cell.model} ({cell.backend}, {stored.result.record['device']}, seed {cell.seed})"
        return [plots.learning_curves(artifacts["history"], f"Learning curves: {label}", folder / "learning_curves.png"),
                plots.confusion_matrix(artifacts["confusion"], class_names(suite), f"Confusion matrix: {label}",
                                       folder / "confusion_matrix.png")]

    def summary(self, result: CellResult) -> str:
        r = result.record
        return (f"{r.get('params', 0):,} params, test {r['test_accuracy']:.2f}%, "
                f"train {r['train_accuracy']:.2f}%, {r['train_seconds']:.1f} s")

    def tables(self, suite: "Suite", cells: list[StoredCell]) -> list[Table]:
        frame = finished_frame(cells)
        if frame.empty:
            return []
        table = report_table(frame)
        columns = [column for column in CONSOLE_COLUMNS if column in table]
        out = [Table("table", f"{suite.title} ({suite.mirrors})", table, TABLE_NOTE, columns)]
        if frame["backend"].nunique() > 1:
            out.append(Table("backends", f"{suite.title}: backends side by side", backends_table(frame)))
        return out

    def figures(self, suite: "Suite", cells: list[StoredCell], out_dir: Path) -> list[Path]:
        frame = finished_frame(cells)
        return comparison_plots(suite, frame, out_dir) if not frame.empty else []


CONSOLE_COLUMNS = ["Model", "Backend", "Device", "Params", "Test acc %", "Report test %", "Δ test", "Train acc %",
                   "Train s", "Report s", "s/epoch", "s to target"]
TABLE_NOTE = ("Δ = measured − report. Accuracies in percent; report CPU seconds were measured on an "
              "Intel i7-10700, ours on the machine in the run's environment. s to target: training seconds "
              "until validation accuracy first reached the suite's target (empty: not reached).")


def report_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The report's table layout, one row per model x backend x device (seeds averaged)."""
    keys = ["model", "backend", "device"]
    grouped = frame.groupby(keys, sort=False)
    mean = grouped[["test_accuracy", "train_accuracy", "train_seconds", "seconds_per_epoch"]].mean()
    # Mean over seeds that reached the target; shown where a target is set (older records have none).
    timed = "target_accuracy" in frame and frame["target_accuracy"].notna().any()
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
    metrics = ["params", "train_accuracy", "test_accuracy", "train_seconds", "seconds_per_epoch"]
    pivot = frame.groupby(["model", "device", "backend"], sort=False)[metrics].mean().unstack("backend")
    backends = list(frame["backend"].unique())
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
    reference = [m for m in suite.models if m.reference.test_accuracy is not None]
    series = {
        f"{backend}, {device}": group.groupby("model", sort=False).mean(numeric_only=True)
        for (backend, device), group in frame.groupby(["backend", "device"], sort=False)
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
