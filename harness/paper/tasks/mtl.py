"""The mtl task (report Task 6): single-task CNNs against one two-headed network on Fashion-MNIST.

Task 1 is the dataset's 10 classes; task 2 the groups of ``options.groups`` (suite data: each class
in exactly one group, checked when the suite loads). Every network shares the trunk of
``options.trunk`` and ends in a dense softmax head per task.

Cells, each model x backend x device x seed (so a run resumes cell by cell):

- ``STL task 1`` and ``STL task 2`` (6.1): trunk + one head, trained by the backend's ``fit`` on the
  task's labels; test accuracy, learning curves, confusion matrix;
- ``MTL`` with ``lambda`` in ``options.lambdas`` (6.2): trunk + both heads, trained on
  ``lambda * L1 + (1 - lambda) * L2``; test accuracy, learning curves and confusion matrix of each head.

Rendering (from stored records only) writes Table 6.1 (both heads per lambda, the report's numbers
beside), Table 6.2 (the best lambda, chosen on validation accuracy, against the single-task models)
and every figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.cells import Cell, CellResult, RunContext, StoredCell
from harness.render import plots, tables
from harness.render.tables import Table
from harness.suite.models import StrictModel
from harness.suite.spec import Dense, Layer, ModelSpec
from harness.tasks.base import Task
from harness.tasks.training import (
    accuracy,
    class_names,
    confusion,
    finished_frame,
    suite_splits,
)

if TYPE_CHECKING:

    from harness.backends.base import Head
    from harness.data import Splits
    from harness.suite.schema import Suite

CLASSES = 10  # both datasets of the harness have 10 labels
STL_MODELS = ("STL task 1", "STL task 2")
MTL_MODEL = "MTL"


class ReportNumbers(StrictModel):
    """The report's Task 6 numbers, shown beside ours (accuracies in percent)."""

    single_task: tuple[float, float] | None = Field(None, description="Test accuracy of STL task 1 and task 2.")
    lambdas: list[float] = Field(default_factory=list, description="The lambdas of Table 6.1.")
    task1: list[float] = Field(default_factory=list, description="Task 1 (classes) accuracy per lambda.")
    task2: list[float] = Field(default_factory=list, description="Task 2 (groups) accuracy per lambda.")
    best_lambda: float | None = Field(None, description="The lambda Table 6.2 compares with single-task.")

    @model_validator(mode="after")
    def _aligned(self) -> "ReportNumbers":
        if not len(self.task1) == len(self.task2) == len(self.lambdas):
            raise ValueError("reference.lambdas, task1 and task2 need one number per lambda each")
        return self

    def at(self, lam: float) -> tuple[float | None, float | None]:
        """The report's (task 1, task 2) accuracy at ``lam``, or Nones."""
        for index, known in enumerate(self.lambdas):
            if abs(known - lam) < 1e-9:
                return self.task1[index], self.task2[index]
        return None, None


class MtlOptions(StrictModel):
    """Settings of the multi-task task."""

    trunk: list[Layer] = Field(min_length=1, description="The shared trunk: layers from the 28x28x1 input to a "
                               "flat vector; each task adds a dense softmax head on it.")
    groups: dict[str, list[int]] = Field(description="Task 2: group name -> the dataset labels in it; each of "
                                         "the 10 labels in exactly one group.")
    lambdas: list[float] = Field([0.0, 0.3, 0.5, 0.7, 1.0], min_length=1,
                                 description="Weights of task 1's loss in lambda*L1 + (1-lambda)*L2, each in [0, 1].")
    reference: ReportNumbers = Field(default_factory=ReportNumbers)

    @field_validator("groups")
    @classmethod
    def _partition(cls, groups: dict[str, list[int]]) -> dict[str, list[int]]:
        if len(groups) < 2:
            raise ValueError(f"task 2 needs at least 2 groups, got {len(groups)}")
        owner: dict[int, str] = {}
        for name, labels in groups.items():
            if not labels:
                raise ValueError(f"group {name!r} is empty")
            for label in labels:
                if not 0 <= label < CLASSES:
                    raise ValueError(f"group {name!r}: {label} is not a label 0..{CLASSES - 1}")
                if label in owner:
                    raise ValueError(f"label {label} is in group {owner[label]!r} and in group {name!r}: "
                                     "each label belongs to exactly one group")
                owner[label] = name
        missing = sorted(set(range(CLASSES)) - set(owner))
        if missing:
            raise ValueError(f"label{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} in no group: "
                             "each of the 10 labels belongs to exactly one group")
        return groups

    @field_validator("lambdas")
    @classmethod
    def _weights(cls, lambdas: list[float]) -> list[float]:
        outside = [lam for lam in lambdas if not 0.0 <= lam <= 1.0]
        if outside:
            raise ValueError(f"each lambda must be in [0, 1], got {outside}")
        if len(set(lambdas)) != len(lambdas):
            raise ValueError(f"lambdas repeat: {lambdas}")
        return lambdas

    @model_validator(mode="after")
    def _trunk_fits(self) -> "MtlOptions":
        try:
            spec = self.trunk_spec()
        except ValidationError as error:
            raise ValueError(f"trunk: {error.errors()[0]['msg'].removeprefix('Value error, ')}") from None
        if len(spec.output_shape) != 1:
            raise ValueError(f"trunk must end in a flat vector for the dense heads (add a flatten layer); "
                             f"it ends in {'x'.join(map(str, spec.output_shape))}")
        return self

    def trunk_spec(self) -> ModelSpec:
        return ModelSpec(name="shared trunk", layers=self.trunk)

    def group_of(self) -> np.ndarray:
        """``group_of[label]``: the index (in file order) of the label's group."""
        mapping = np.zeros(CLASSES, dtype=np.int64)
        for index, labels in enumerate(self.groups.values()):
            mapping[labels] = index
        return mapping

    def heads(self) -> list["Head"]:
        """Task 1 (the labels themselves) and task 2 (their groups)."""
        from harness.backends.base import Head

        return [Head("task 1: classes", np.arange(CLASSES, dtype=np.int64)), Head("task 2: groups", self.group_of())]


def single_task_spec(trunk: ModelSpec, classes: int, name: str) -> ModelSpec:
    """The trunk with one dense softmax head: a single-task model, or one head of the multi-task one."""
    return ModelSpec(name=name, input_shape=trunk.input_shape,
                     layers=[*trunk.layers, Dense(units=classes, activation="softmax")])


def relabelled(splits: "Splits", label_map: np.ndarray) -> "Splits":
    """The same images with every label replaced by ``label_map[label]``."""
    from dataclasses import replace

    return replace(splits, y_train=label_map[splits.y_train], y_val=label_map[splits.y_val],
                   y_test=label_map[splits.y_test])


def head_record(prefix: str, history: list[dict[str, Any]], predicted: np.ndarray, train_predicted: np.ndarray,
                splits: "Splits", label_map: np.ndarray) -> dict[str, Any]:
    """The scalar columns of one head: accuracies (percent) and final losses."""
    last = history[-1]
    return {
        f"{prefix}_test_accuracy": accuracy(predicted, label_map[splits.y_test]),
        f"{prefix}_train_accuracy": accuracy(train_predicted, label_map[splits.y_train]),
        f"{prefix}_val_accuracy": None if last["val_accuracy"] is None else 100.0 * last["val_accuracy"],
        f"{prefix}_final_train_loss": last["train_loss"],
        f"{prefix}_final_val_loss": last["val_loss"],
    }


class MtlTask(Task):
    """Tables 6.1 and 6.2 and Figs. 6.1-6.8 of the report."""

    name = "mtl"
    table_stems = ("table_6_1", "table_6_2")
    Options = MtlOptions
    selecting_options = ("lambdas", "reference")
    columns = ("suite", "model", "lambda", "backend", "device", "seed", "params", "epochs", "task1_test_accuracy",
               "task2_test_accuracy", "task1_val_accuracy", "task2_val_accuracy", "train_seconds", "status", "error")

    def plan(self, suite: "Suite") -> list[Cell]:
        options = self.options(suite)
        models: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in STL_MODELS]
        models += [(MTL_MODEL, {"lambda": lam}) for lam in options.lambdas]
        return self.matrix_cells(suite, models)

    def run(self, cell: Cell, context: RunContext) -> CellResult:
        suite, options, backend, device = self.setup(cell)
        context.observer.epochs = suite.train.epochs
        splits = suite_splits(suite)
        if cell.model == MTL_MODEL:
            record, artifacts = self._multi_task(backend, suite, options, splits, cell, device, context)
        else:
            record, artifacts = self._single_task(backend, suite, options, splits, cell, device, context)
        record.update(device=device, epochs=suite.train.epochs, precision=suite.train.precision,
                      train_samples=len(splits.y_train),
                      val_samples=len(splits.y_val), test_samples=len(splits.y_test))
        artifacts["backend_environment"] = backend.environment(device)
        artifacts["folder"] = str(context.artifact_dir(cell).relative_to(context.run_dir))  # where render draws
        return CellResult("ok", record, artifacts)

    def _single_task(self, backend: Any, suite: "Suite", options: MtlOptions, splits: "Splits", cell: Cell,
                     device: str, context: RunContext) -> tuple[dict[str, Any], dict[str, Any]]:
        task = STL_MODELS.index(cell.model)
        head = options.heads()[task]
        spec = single_task_spec(options.trunk_spec(), head.classes, cell.model)
        data = relabelled(splits, head.label_map)
        model = backend.build(spec, seed=cell.seed, device=device)
        fit = backend.fit(model, data, suite.train, epochs=suite.train.epochs, seed=cell.seed, device=device,
                          observer=context.observer)
        history = [metrics.as_dict() for metrics in fit.history]
        predicted = backend.predict(model, data.x_test, device=device)
        prefix = f"task{task + 1}"
        record = {"params": backend.count_params(model), "train_seconds": fit.seconds, "train_path": fit.path,
                  **head_record(prefix, history, predicted, backend.predict(model, data.x_train, device=device),
                                splits, head.label_map)}
        # "history" as in the MTL cell (compare takes each epoch's seconds from it: the row's timing
        # samples); the per-task name is what the learning curves draw, as for the MTL cell's heads.
        artifacts = {"history": history, f"{prefix}_history": history,
                     f"{prefix}_confusion": confusion(predicted, data.y_test, head.classes)}
        return record, artifacts

    def _multi_task(self, backend: Any, suite: "Suite", options: MtlOptions, splits: "Splits", cell: Cell,
                    device: str, context: RunContext) -> tuple[dict[str, Any], dict[str, Any]]:
        lam = float(cell.params["lambda"])
        heads = options.heads()
        model = backend.build_multitask(options.trunk_spec(), heads, seed=cell.seed, device=device)
        fit = backend.fit_multitask(model, splits, heads, [lam, 1.0 - lam], suite.train, epochs=suite.train.epochs,
                                    seed=cell.seed, device=device, observer=context.observer)
        predicted = backend.predict_multitask(model, splits.x_test, device=device)
        train_predicted = backend.predict_multitask(model, splits.x_train, device=device)
        record: dict[str, Any] = {"lambda": lam, "params": backend.count_params(model), "train_seconds": fit.seconds,
                                  "train_path": fit.path, "final_train_loss": fit.history[-1].train_loss,
                                  "final_val_loss": fit.history[-1].val_loss}
        artifacts: dict[str, Any] = {"history": [epoch.as_dict() for epoch in fit.history]}
        for index, head in enumerate(heads):
            prefix = f"task{index + 1}"
            history = [epoch.heads[index].as_dict() for epoch in fit.history]
            record.update(head_record(prefix, history, predicted[index], train_predicted[index], splits,
                                      head.label_map))
            artifacts[f"{prefix}_history"] = history
            artifacts[f"{prefix}_confusion"] = confusion(predicted[index], head.label_map[splits.y_test], head.classes)
        return record, artifacts

    def summary(self, result: CellResult) -> str:
        r = result.record
        accuracies = ", ".join(f"task {k} test {r[f'task{k}_test_accuracy']:.2f}%" for k in (1, 2)
                               if r.get(f"task{k}_test_accuracy") is not None)
        where = f"lambda {r['lambda']:g}: " if r.get("lambda") is not None else ""
        return f"{where}{accuracies}, {r['train_seconds']:.1f} s"

    def tables(self, suite: "Suite", cells: list[StoredCell]) -> list[Table]:
        options = self.options(suite)
        ok = finished_frame(cells)
        out: list[Table] = []
        if ok.empty:
            return out
        if "lambda" in ok and ok["lambda"].notna().any():
            out.append(Table("table_6_1", f"{suite.title}: Table 6.1, test accuracy of both heads per lambda",
                             lambda_table(ok, options), TABLE_6_1_NOTE))
        comparison = stl_vs_mtl_table(ok, options)
        if not comparison.empty:
            out.append(Table("table_6_2", f"{suite.title}: Table 6.2, single-task vs multi-task", comparison,
                             TABLE_6_2_NOTE))
        return out

    def figures(self, suite: "Suite", cells: list[StoredCell], out_dir: Path) -> list[Path]:
        return figures(suite, self.options(suite), cells, out_dir)


TABLE_6_1_NOTE = ("lambda weighs task 1 (10 classes) in lambda*L1 + (1-lambda)*L2; task 2 is the 3 groups. "
                  "Test accuracy in percent, seeds averaged; Δ = measured − report.")
TABLE_6_2_NOTE = ("Best lambda: the highest mean validation accuracy of the two heads (the test set is not used to "
                  "choose it); the report compares with lambda 0.7. Δ = MTL − STL.")


def mean_by(frame: pd.DataFrame, keys: list[str], columns: list[str]) -> pd.DataFrame:
    """Seeds averaged: the mean of ``columns`` per ``keys``, in first-seen order."""
    return frame.groupby(keys, sort=False, dropna=False)[columns].mean().reset_index()


def lambda_table(frame: pd.DataFrame, options: MtlOptions) -> pd.DataFrame:
    """Table 6.1: per backend, device and lambda, each head's test accuracy beside the report's."""
    mtl = mean_by(frame[frame["model"] == MTL_MODEL], ["backend", "device", "lambda"],
                  ["task1_test_accuracy", "task2_test_accuracy"])
    # One block per backend (in the matrix's order), lambdas rising within it.
    backend_order = {name: position for position, name in enumerate(dict.fromkeys(frame["backend"]))}
    mtl = mtl.sort_values(["backend", "lambda"], key=lambda column: column.map(backend_order)
                          if column.name == "backend" else column, kind="stable").reset_index(drop=True)
    reference = [options.reference.at(lam) for lam in mtl["lambda"]]
    return pd.DataFrame({
        "Backend": mtl["backend"], "Device": mtl["device"], "λ": mtl["lambda"],
        "Task 1 %": mtl["task1_test_accuracy"], "Report task 1 %": [r[0] for r in reference],
        "Δ task 1": [tables.difference(a, r[0]) for a, r in zip(mtl["task1_test_accuracy"], reference)],
        "Task 2 %": mtl["task2_test_accuracy"], "Report task 2 %": [r[1] for r in reference],
        "Δ task 2": [tables.difference(a, r[1]) for a, r in zip(mtl["task2_test_accuracy"], reference)],
    })


def best_lambda(mtl: pd.DataFrame) -> float:
    """The lambda whose two heads have the highest mean validation accuracy."""
    score = (mtl["task1_val_accuracy"] + mtl["task2_val_accuracy"]) / 2
    return float(mtl.loc[score.idxmax(), "lambda"])


def stl_vs_mtl_table(frame: pd.DataFrame, options: MtlOptions) -> pd.DataFrame:
    """Table 6.2: per backend and device, each task's single-task accuracy against the best lambda's."""
    rows = []
    report = options.reference
    report_mtl = report.at(report.best_lambda) if report.best_lambda is not None else (None, None)
    for (backend, device), group in frame.groupby(["backend", "device"], sort=False):
        mtl = mean_by(group[group["model"] == MTL_MODEL], ["lambda"],
                      ["task1_test_accuracy", "task2_test_accuracy", "task1_val_accuracy", "task2_val_accuracy"])
        stl = {model: group[group["model"] == model] for model in STL_MODELS}
        if mtl.empty or any(part.empty for part in stl.values()) or mtl[["task1_val_accuracy"]].isna().all().all():
            continue
        lam = best_lambda(mtl)
        chosen = mtl[mtl["lambda"] == lam].iloc[0]
        for task in (1, 2):
            single = float(stl[STL_MODELS[task - 1]][f"task{task}_test_accuracy"].mean())
            multi = float(chosen[f"task{task}_test_accuracy"])
            report_single = report.single_task[task - 1] if report.single_task else None
            report_multi = report_mtl[task - 1]
            rows.append({
                "Backend": backend, "Device": device, "Task": ("task 1 (classes)", "task 2 (groups)")[task - 1],
                "STL %": single, "Report STL %": report_single,
                "Δ STL vs report": tables.difference(single, report_single),
                "Best λ": lam, "MTL %": multi, "Δ MTL − STL": multi - single,
                "Report λ": report.best_lambda, "Report MTL %": report_multi,
                "Δ report": tables.difference(report_multi, report_single),
            })
    return pd.DataFrame(rows)


def figures(suite: "Suite", options: MtlOptions, cells: list[StoredCell], out_dir: Path) -> list[Path]:
    """Per finished cell, in its folder: learning curves and confusion matrices of each head it trained."""
    labels = (class_names(suite), list(options.groups))
    written = []
    for stored in cells:
        if not stored.result.ok:
            continue
        cell, artifacts = stored.cell, stored.result.artifacts
        folder = out_dir / artifacts["folder"]
        where = f"{cell.backend}, {stored.record['device']}, seed {cell.seed}"
        if cell.model == MTL_MODEL:
            lam = float(cell.params["lambda"])
            written.append(two_head_curves(artifacts, f"MTL, λ = {lam:g}: learning curves of both heads ({where})",
                                           folder / "learning_curves.png"))
        for task in (task for task in (1, 2) if f"task{task}_history" in artifacts):
            what = ("10 classes", f"{len(options.groups)} groups")[task - 1]
            if cell.model == MTL_MODEL:
                subject = f"MTL λ = {float(cell.params['lambda']):g}, task {task} ({what})"
            else:
                subject = f"{cell.model} ({what})"
                written.append(plots.learning_curves(artifacts[f"task{task}_history"],
                                                     f"{subject}: learning curves ({where})",
                                                     folder / "learning_curves.png"))
            written.append(plots.confusion_matrix(artifacts[f"task{task}_confusion"], labels[task - 1],
                                                  f"{subject}: test confusion ({where})",
                                                  folder / f"confusion_task{task}.png"))
    return written


HEAD_COLOURS = ("tab:blue", "tab:orange")


def two_head_curves(artifacts: dict[str, Any], title: str, path: Path) -> Path:
    """Accuracy and loss of both heads (train solid, validation dashed) and the weighted objective."""
    with plots.plt.rc_context(plots.STYLE):
        figure, axes = plots.plt.subplots(1, 3, figsize=(14, 3.9), layout="constrained")
        for task, colour in zip((1, 2), HEAD_COLOURS):
            history = artifacts[f"task{task}_history"]
            epochs = [h["epoch"] for h in history]
            for axis, metric, scale in ((axes[0], "accuracy", 100.0), (axes[1], "loss", 1.0)):
                axis.plot(epochs, [scale * h[f"train_{metric}"] for h in history], "o-", color=colour,
                          label=f"task {task} train")
                if all(h[f"val_{metric}"] is not None for h in history):
                    axis.plot(epochs, [scale * h[f"val_{metric}"] for h in history], "s--", color=colour,
                              label=f"task {task} validation")
        overall = artifacts["history"]
        epochs = [h["epoch"] for h in overall]
        axes[2].plot(epochs, [h["train_loss"] for h in overall], "o-", color="black", label="train")
        if all(h["val_loss"] is not None for h in overall):
            axes[2].plot(epochs, [h["val_loss"] for h in overall], "s--", color="black", label="validation")
        for axis, label in zip(axes, ("accuracy (%)", "loss of each head", "λ·L1 + (1−λ)·L2")):
            axis.set_xlabel("epoch")
            axis.set_ylabel(label)
            axis.set_xticks(epochs)
            axis.legend(fontsize=8)
        figure.suptitle(title)
        return plots.save(figure, path)


TASK = MtlTask()
