"""Image grids for looking inside a CNN: filter weights, feature maps, gradient-ascent images, dreams.

A grid of hundreds of small tiles is drawn as one mosaic image (tiles separated by blank lines) on a
single axis, with ticks that number the rows and columns, rather than as hundreds of axes: it stays
fast and readable at 128 filters or 64 x 32 kernel slices. Written through :func:`harness.render.plots.save`
(PNG, 150 dpi, atomic) with the style of the other figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.render.plots import STYLE, plt, save

PAD = 1  # blank pixels between tiles


@dataclass(frozen=True)
class Grid:
    """Tiles laid out in rows and columns, ``(rows, columns, h, w)`` (NaN where there is no tile),
    with what the rows and columns count."""

    tiles: np.ndarray
    row_labels: list[str]
    column_labels: list[str]
    ylabel: str
    xlabel: str

    @classmethod
    def of_filters(cls, tiles: np.ndarray, columns: int | None = None, first: int = 0) -> "Grid":
        """``(N, h, w)`` tiles of filters ``first, first+1, ...``, row by row; a tile's filter is its
        row's label plus its column's."""
        count, height, width = tiles.shape
        columns = columns or (4 if count <= 16 else 8 if count <= 64 else 16)  # 32 -> 4x8, 128 -> 8x16
        rows = math.ceil(count / columns)
        padded = np.full((rows * columns, height, width), np.nan)
        padded[:count] = tiles
        return cls(padded.reshape(rows, columns, height, width),
                   [str(first + row * columns) for row in range(rows)], [f"+{c}" for c in range(columns)],
                   "filter (row start)", "+ column")


def mosaic(tiles: np.ndarray) -> np.ndarray:
    """``(rows, columns, h, w)`` tiles as one ``(rows*(h+PAD)-PAD, columns*(w+PAD)-PAD)`` image, NaN between."""
    rows, columns, height, width = tiles.shape
    full = np.full((rows, height + PAD, columns, width + PAD), np.nan)
    full[:, :height, :, :width] = tiles.transpose(0, 2, 1, 3)
    return full.reshape(rows * (height + PAD), columns * (width + PAD))[:-PAD, :-PAD]


def standardise(images: np.ndarray) -> np.ndarray:
    """Each image (first axis) to [0, 1] for display as Chollet's ``deprocess_image`` does: zero mean,
    unit standard deviation, then 0.25 * z + 0.5, clipped. Keeps contrast comparable across images
    whose raw values drift far outside [0, 1] during gradient ascent."""
    axes = tuple(range(1, images.ndim))
    centred = images - images.mean(axis=axes, keepdims=True)
    spread = centred.std(axis=axes, keepdims=True)
    return np.clip(0.25 * centred / np.maximum(spread, 1e-8) + 0.5, 0.0, 1.0)


def stretch(images: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Each image (first axis) to [0, 1] between its own ``low`` and ``high`` percentiles: a dream keeps
    its dark background dark, yet values pushed far outside [0, 1] stay visible."""
    axes = tuple(range(1, images.ndim))
    bottom = np.percentile(images, low, axis=axes, keepdims=True)
    top = np.percentile(images, high, axis=axes, keepdims=True)
    return np.clip((images - bottom) / np.maximum(top - bottom, 1e-8), 0.0, 1.0)


def grid_figure(grid: Grid, *, title: str, path: Path, cmap: str = "gray", value_label: str | None = None,
                vmin: float | None = None, vmax: float | None = None, inset: np.ndarray | None = None,
                inset_title: str = "", flagged: np.ndarray | None = None, flag: str = "") -> Path:
    """Draw a grid on one shared colour scale (a colour bar says what it measures when
    ``value_label`` is given); ``inset`` shows the input image to the left of the grid; the tiles
    where ``flagged`` (one bool per tile, row by row) is true get ``flag`` written on them."""
    rows, columns, height, width = grid.tiles.shape
    image = mosaic(grid.tiles)
    aspect = image.shape[0] / image.shape[1]
    grid_width = float(np.clip(0.5 * columns, 4.5, 12.0))
    inset_width = 1.8 if inset is not None else 0.0
    colorbar_width = 0.9 if value_label else 0.0
    # Wide enough for the title (bbox "tight" would otherwise widen the canvas around a too-small grid).
    title_width = 0.075 * max(len(line) for line in title.splitlines())
    size = (max(grid_width + inset_width + colorbar_width, title_width), grid_width * aspect + 1.1)
    colours = plt.get_cmap(cmap).with_extremes(bad="white")  # NaN: the separators
    with plt.rc_context({**STYLE, "axes.grid": False}):
        figure = plt.figure(figsize=size, layout="constrained")
        ratios = ([inset_width] if inset is not None else []) + [grid_width]
        axes = figure.subplots(1, len(ratios), width_ratios=ratios, squeeze=False)[0]
        if inset is not None:
            axes[0].imshow(inset, cmap="gray", vmin=0.0, vmax=1.0)
            axes[0].set_title(inset_title, fontsize=9)
            axes[0].set_axis_off()
        axis = axes[-1]
        shown = axis.imshow(image, cmap=colours, vmin=vmin, vmax=vmax, interpolation="nearest")
        _number(axis, grid, height, width)
        if flagged is not None:
            for tile in np.flatnonzero(flagged):
                row, column = divmod(int(tile), columns)
                left, top = column * (width + PAD) - 0.5, row * (height + PAD) - 0.5
                axis.add_patch(plt.Rectangle((left, top), width, height, fill=False, edgecolor="tab:red",
                                             linewidth=1.5))
                axis.text(left + 0.5, top + 0.5, flag, color="tab:red", fontsize=6, ha="left", va="top",
                          bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.8})
        if value_label:
            figure.colorbar(shown, ax=axis, fraction=0.04, pad=0.02, label=value_label)
        figure.suptitle(title, fontsize=10)
        return save(figure, path)


def _number(axis: plt.Axes, grid: Grid, height: int, width: int) -> None:
    """Ticks at the tile centres, thinned to at most about 16 per side."""
    rows, columns = grid.tiles.shape[:2]
    for count, size, labels, set_ticks in ((rows, height, grid.row_labels, axis.set_yticks),
                                          (columns, width, grid.column_labels, axis.set_xticks)):
        step = max(1, math.ceil(count / 16))
        chosen = range(0, count, step)
        set_ticks([i * (size + PAD) + (size - 1) / 2 for i in chosen], [labels[i] for i in chosen], fontsize=7)
    axis.set_ylabel(grid.ylabel)
    axis.set_xlabel(grid.xlabel)
    axis.tick_params(length=0)
    for spine in axis.spines.values():
        spine.set_visible(False)


def image_table(images: np.ndarray, row_titles: Sequence[str], column_titles: Sequence[str], *, title: str,
                path: Path) -> Path:
    """A small table of images ``(rows, columns, h, w)`` in [0, 1] with titled rows and columns
    (deep dream: one row per digit, the input then one column per layer)."""
    rows, columns = images.shape[:2]
    with plt.rc_context({**STYLE, "axes.grid": False}):
        figure, axes = plt.subplots(rows, columns, figsize=(1.9 * columns + 0.6, 1.9 * rows + 0.8),
                                    squeeze=False, layout="constrained")
        for (row, column), axis in np.ndenumerate(axes):
            axis.imshow(images[row, column], cmap="gray", vmin=0.0, vmax=1.0)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(column_titles[column], fontsize=9)
            if column == 0:
                axis.set_ylabel(row_titles[row], fontsize=9)
        figure.suptitle(title, fontsize=10)
        return save(figure, path)
