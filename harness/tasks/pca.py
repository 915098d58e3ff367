"""The PCA task (report Task 1): explained variance and 2-D views of the train and test sets.

One cell per set ("train", "test"). A cell fits a PCA with every component on the set's first N
images in file order (N = ``data.train_samples`` / ``data.test_samples``; all when unset: the report
plots "the first 400 samples", which only means something in file order), records the first
ratios and the components needed for the variance share, and keeps the ratios in its artifacts and
the 2-D projection with the labels in ``projection.npz`` in its folder. Rendering draws every figure
and the table from those stored files.

Figures (report Fig. 1.2-1.7): cumulative explained variance of both sets; each set's 2-D scatter of
all its digits by class; and of its first ``small_samples`` digits.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from harness.threads import blas_threads, framework_threads
from harness.cells import Cell, CellResult, RunContext, StoredCell
from harness.render import plots, tables
from harness.render.tables import Table
from harness.suite.models import StrictModel
from harness.tasks.base import Task

if TYPE_CHECKING:

    from harness.suite.schema import Suite

SETS = ("train", "test")
SetName = Literal["train", "test"]


class SetReference(StrictModel):
    """The report's numbers for one set (None where it gives none)."""

    ratios: list[float] = Field(default_factory=list, description="Explained-variance ratios of the first components.")
    components: int | None = Field(None, description="Components that keep the variance share.")


class PCAOptions(StrictModel):
    """Settings of the PCA task."""

    sets: list[SetName] = Field(list(SETS), min_length=1, description="Which sets to analyse: 'train', 'test'.")
    variance_share: float = Field(0.95, gt=0.0, le=1.0, description="Share of the variance the components must keep.")
    leading: int = Field(2, ge=1, le=10, description="Leading ratios recorded and tabled.")
    small_samples: int = Field(400, ge=1, description="Samples in the 'first N samples' scatter plots.")
    reference: dict[SetName, SetReference] = Field(default_factory=dict, description="The report's numbers per set.")


class PCATask(Task):
    """Report Task 1, Fig. 1.2-1.7."""

    name = "pca"
    table_stems = ("table",)
    Options = PCAOptions
    selecting_options = ("sets", "small_samples", "reference")
    uses_backends = False  # scikit-learn on NumPy arrays, no framework
    columns = ("suite", "model", "samples", "ratio_1", "ratio_2", "components", "variance_share", "seconds",
               "status", "error")

    def plan(self, suite: "Suite") -> list[Cell]:
        config = suite.resolved()
        # PCA has no randomness: one cell per set, whatever the matrix's seeds, backends and devices.
        sets = self.options(suite).sets
        return [Cell(suite.name, self.name, name, "scikit-learn", "cpu", 0, config) for name in sets]

    def run(self, cell: Cell, context: RunContext) -> CellResult:
        from harness import data
        from harness.algorithms import pca

        setup = self.setup(cell)
        suite, options = setup.suite, setup.options
        dataset = data.load(suite.data.dataset)
        images, labels = _first(dataset, cell.model, suite)
        # Repeats (the suite's ``repeats``) refit the same images only to time them: the fit is
        # deterministic, and the seconds of every fit give compare's noise test a spread.
        # On the training's thread count (``$HARNESS_THREADS``), as the calibration is timed: BLAS
        # would otherwise take every core and, on a busy machine, wait for them.
        timings = []
        with blas_threads(framework_threads()):
            for _ in range(suite.repeats):
                start = time.perf_counter()
                fit = pca.fit_pca(images)
                timings.append(time.perf_counter() - start)
        seconds = float(np.median(timings))
        folder = context.artifact_dir(cell)
        np.savez_compressed(folder / "projection.npz", projection=fit.projection.astype(np.float32), labels=labels)
        record: dict[str, Any] = {"samples": len(images), "seconds": seconds}
        for index in range(options.leading):
            record[f"ratio_{index + 1}"] = float(fit.ratios[index]) if index < len(fit.ratios) else None
        record.update(components=fit.components_for(options.variance_share), variance_share=options.variance_share)
        artifacts = {
            "ratios": fit.ratios.tolist(),
            "projection": str((folder / "projection.npz").relative_to(context.run_dir)),
            "class_names": list(dataset.class_names),
        }
        if len(timings) > 1:
            artifacts["timings"] = {"seconds": timings}
        return CellResult("ok", record, artifacts)

    def summary(self, result: CellResult) -> str:
        r = result.record
        return (f"{r['samples']:,} samples: ratios {r['ratio_1']:.4f} / {r.get('ratio_2') or 0:.4f}, "
                f"{r['components']} components for {r['variance_share']:.0%}")

    def tables(self, suite: "Suite", cells: list[StoredCell]) -> list[Table]:
        done = [stored for stored in cells if stored.result.ok]
        if not done:
            return []
        return [Table("table", f"{suite.title} ({suite.mirrors})", report_table(done, self.options(suite)), TABLE_NOTE)]

    def figures(self, suite: "Suite", cells: list[StoredCell], out_dir: Path) -> list[Path]:
        options = self.options(suite)
        done = [stored for stored in cells if stored.result.ok]
        written: list[Path] = []
        if not done:
            return written
        title = f"{suite.title}: cumulative explained variance (dashed: {options.variance_share:.0%})"
        written.append(cumulative_plot(done, options, title, out_dir / "explained_variance.png"))
        for stored in done:
            saved = np.load(out_dir / stored.result.artifacts["projection"])
            names = stored.result.artifacts["class_names"]
            which = f"{stored.cell.model} set"
            count = len(saved["labels"])
            written.append(scatter(saved["projection"], saved["labels"], names,
                                   f"PCA of the {which}: all {count:,} digits on the first two components",
                                   out_dir / f"scatter_{stored.cell.model}.png"))
            small = min(options.small_samples, count)
            written.append(scatter(saved["projection"][:small], saved["labels"][:small], names,
                                   f"PCA of the {which}: its first {small} digits (components fitted on all {count:,})",
                                   out_dir / f"scatter_{stored.cell.model}_first{small}.png", annotate=True))
        return written


TABLE_NOTE = ("Explained-variance ratios in percent of the total variance; Δ = ours − report. Each set's "
              "PCA is fitted on that set alone, as in the report.")


def _first(dataset: Any, which: str, suite: "Suite") -> tuple[np.ndarray, np.ndarray]:
    """The first N images and labels of the train or test set, in file order."""
    if which == "train":
        images, labels, count = dataset.train_images, dataset.train_labels, suite.data.train_samples
    else:
        images, labels, count = dataset.test_images, dataset.test_labels, suite.data.test_samples
    count = len(images) if count is None else min(count, len(images))
    return images[:count], np.asarray(labels[:count])


def report_table(cells: list[StoredCell], options: PCAOptions) -> pd.DataFrame:
    """One row per quantity and set: ours, the report's, and the difference."""
    rows = []
    for stored in cells:
        which, record = stored.cell.model, stored.record
        reference = options.reference.get(which, SetReference())
        for index in range(options.leading):
            ours = record.get(f"ratio_{index + 1}")
            theirs = reference.ratios[index] if index < len(reference.ratios) else None
            ours_pct = None if ours is None else 100 * ours
            theirs_pct = None if theirs is None else 100 * theirs
            rows.append({"Quantity": f"explained variance, component {index + 1} (%)", "Set": which,
                         "Samples": record["samples"], "Ours": ours_pct, "Report": theirs_pct,
                         "Δ": tables.difference(ours_pct, theirs_pct)})
        rows.append({"Quantity": f"components for {options.variance_share:.0%} of the variance", "Set": which,
                     "Samples": record["samples"], "Ours": record["components"], "Report": reference.components,
                     "Δ": None if reference.components is None else record["components"] - reference.components})
    return pd.DataFrame(rows, dtype=object)  # object keeps counts as integers beside the percentages


def cumulative_plot(cells: list[StoredCell], options: PCAOptions, title: str, path: Path) -> Path:
    """Cumulative explained variance per set (report Fig. 1.2), with the share's component count marked."""
    with plots.plt.rc_context(plots.STYLE):
        figure, axis = plots.plt.subplots(figsize=(7, 4.2))
        for stored in cells:
            cumulative = np.cumsum(stored.result.artifacts["ratios"])
            needed = stored.record["components"]
            line, = axis.plot(np.arange(1, len(cumulative) + 1), cumulative,
                              label=f"{stored.cell.model} ({stored.record['samples']:,} images): "
                                    f"{needed} components for {options.variance_share:.0%}")
            axis.plot([needed], [cumulative[needed - 1]], "o", color=line.get_color())
        axis.axhline(options.variance_share, color="grey", linestyle="--", linewidth=1)
        axis.set_xscale("log")
        axis.set_xlabel("number of components (log scale)")
        axis.set_ylabel("cumulative explained variance ratio")
        axis.set_ylim(0, 1.02)
        axis.set_title(title)
        axis.legend(loc="lower right")
        return plots.save(figure, path)


def scatter(points: np.ndarray, labels: np.ndarray, class_names: list[str], title: str, path: Path,
            annotate: bool = False) -> Path:
    """Points on the first two components coloured by class (report Fig. 1.3-1.7).

    With ``annotate`` each class's label is written at its centroid, which helps read the sparse
    small-sample plots where the report looks for separable pairs.
    """
    with plots.plt.rc_context({**plots.STYLE, "axes.grid": False}):
        figure, axis = plots.plt.subplots(figsize=(7.5, 6.2))
        colours = plots.plt.get_cmap("tab10")
        dense = len(points) > 5000
        for label, name in enumerate(class_names):
            chosen = labels == label
            if not chosen.any():
                continue
            axis.scatter(points[chosen, 0], points[chosen, 1], s=1 if dense else 12, alpha=0.35 if dense else 0.8,
                         color=colours(label), label=name, linewidths=0, rasterized=dense)
            if annotate:
                centre = points[chosen].mean(axis=0)
                axis.annotate(name, centre, fontsize=12, weight="bold", color=colours(label),
                              ha="center", va="center")
        axis.set_xlabel("component 1")
        axis.set_ylabel("component 2")
        axis.set_title(title)
        legend = axis.legend(markerscale=8 if dense else 1.5, loc="best", fontsize=8, ncol=2)
        for handle in legend.legend_handles:
            handle.set_alpha(1.0)  # the points are faint so that dense regions show; the key should not be
        return plots.save(figure, path)


TASK = PCATask()
