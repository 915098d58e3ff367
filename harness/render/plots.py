"""Figures for papers: learning curves, confusion matrices and comparisons across models.

matplotlib runs headless (Agg); every figure is written atomically as PNG at 150 dpi with a title that
says what is shown and with which settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.paths import replacing  # noqa: E402

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "axes.titlesize": 11,
    "legend.frameon": False,
}


def save(figure: plt.Figure, path: Path) -> Path:
    """Save a figure via a temporary file and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replacing(path, f".{path.stem}.{os.getpid()}.tmp.png") as temporary:
            figure.savefig(temporary, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


def learning_curves(history: Sequence[dict[str, Any]], title: str, path: Path) -> Path:
    """Train vs validation accuracy and loss per epoch (the report's Fig. 3.3 / 4.2)."""
    with plt.rc_context(STYLE):
        figure, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(10, 3.8))
        epochs = [h["epoch"] for h in history]
        for axis, metric, label in ((accuracy_axis, "accuracy", "accuracy (%)"), (loss_axis, "loss", "loss")):
            scale = 100 if metric == "accuracy" else 1
            axis.plot(epochs, [scale * h[f"train_{metric}"] for h in history], "o-", label="train")
            validation = [h[f"val_{metric}"] for h in history]
            if all(v is not None for v in validation):
                axis.plot(epochs, [scale * v for v in validation], "s--", label="validation")
            axis.set_xlabel("epoch")
            axis.set_ylabel(label)
            axis.set_xticks(epochs)
            axis.legend()
        figure.suptitle(title)
        return save(figure, path)


def confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str, path: Path) -> Path:
    """A confusion matrix with counts in the cells (rows: true class, columns: predicted)."""
    counts = np.asarray(matrix)
    with plt.rc_context({**STYLE, "axes.grid": False}):
        figure, axis = plt.subplots(figsize=(6.4, 5.6))
        image = axis.imshow(counts, cmap="Blues")
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
        ticks = range(len(labels))
        axis.set_xticks(ticks, labels, rotation=45 if max(len(l) for l in labels) > 2 else 0, ha="right")
        axis.set_yticks(ticks, labels)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        threshold = counts.max() / 2 if counts.size else 0
        for (row, column), value in np.ndenumerate(counts):
            axis.text(column, row, str(value), ha="center", va="center", fontsize=7,
                      color="white" if value > threshold else "black")
        axis.set_title(title)
        return save(figure, path)


def comparison(
    series: dict[str, tuple[Sequence[float], Sequence[float], Sequence[str]]],
    reference: tuple[Sequence[float], Sequence[float], Sequence[str]] | None,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    path: Path,
    log_x: bool = False,
) -> Path:
    """Scatter one series per backend/device (x, y, point labels), the report's points beside them."""
    with plt.rc_context(STYLE):
        figure, axis = plt.subplots(figsize=(7.5, 4.8))
        markers = iter("osD^v<>P*X")
        for name, (xs, ys, names) in series.items():
            axis.plot(xs, ys, next(markers), label=name, markersize=7, alpha=0.85)
        if reference and len(reference[0]):
            axis.plot(reference[0], reference[1], "x", color="black", label="report", markersize=8)
        labelled = reference if reference and len(reference[0]) else next(iter(series.values()), None)
        if labelled:
            for x, y, name in zip(*labelled):
                axis.annotate(_short(name), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if log_x:
            axis.set_xscale("log")
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        axis.set_title(title)
        axis.legend()
        return save(figure, path)


def _short(name: str) -> str:
    """'Additional Model 3' -> 'M3', 'CNN Baseline Model' -> 'Baseline' (labels that fit beside points)."""
    if name.startswith("Additional Model"):
        return "M" + name.rsplit(" ", 1)[-1]
    return name.replace(" Model", "").replace("MLP ", "").replace("CNN ", "")
