"""One picture per report table: each of its judged numbers as ours − the report's, forest-plot style.

A row per model (and quantity): the report's number is the zero line, the shaded band its tolerance,
the dot our mean over seeds, the thick bar its 95 % confidence interval and the thin line the seed
range. Rows whose quantity the report leaves untrained (judged against chance) and quantities without a
numeric tolerance (times, exact counts) are left to the table below the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from harness.study.document import ReferenceCheck


def plotted(checks: Sequence["ReferenceCheck"]) -> list["ReferenceCheck"]:
    """The checks a forest plot shows: a result of ours, a numeric tolerance above 0, not a chance row."""
    return [c for c in checks if c.ours is not None and c.chance is None and not isinstance(c.tolerance, str)
            and float(c.tolerance) > 0]


def forest(checks: Sequence["ReferenceCheck"], title: str, path: Path) -> Path | None:
    """Draw the table's forest plot into ``path``; None when it has no number to plot."""
    rows = plotted(checks)
    if not rows:
        return None
    from harness.render import plots  # matplotlib only when a document is drawn, not at every command's start

    with plots.plt.rc_context(plots.STYLE):
        figure, axis = plots.plt.subplots(figsize=(8, 0.9 + 0.42 * len(rows)))
        for y, check in enumerate(reversed(rows)):
            tolerance = float(check.tolerance)
            axis.fill_betweenx([y - 0.38, y + 0.38], -tolerance, tolerance, color="tab:green", alpha=0.18,
                               linewidth=0, label="tolerance" if y == 0 else None)
            spread = check.spread
            if spread.n > 1:
                low, high = spread.low_high
                axis.plot([low - check.report, high - check.report], [y, y], color="0.45", linewidth=1,
                          label="seed range" if y == 0 else None)
            if spread.interval is not None:
                low, high = spread.interval
                axis.plot([low - check.report, high - check.report], [y, y], color="tab:blue", linewidth=4,
                          solid_capstyle="butt", label="95 % CI of our mean" if y == 0 else None)
            axis.plot([check.ours - check.report], [y], "o", color="tab:blue", markersize=6,
                      label=f"ours ({spread.n} seed{'s' if spread.n != 1 else ''})" if y == 0 else None)
        axis.axvline(0, color="black", linewidth=1.2, label="the report's number")
        axis.set_yticks(range(len(rows)))
        axis.set_yticklabels([f"{c.row}, {c.quantity} (report {c.report:g})" for c in reversed(rows)], fontsize=8)
        axis.set_ylim(-0.6, len(rows) - 0.4)
        axis.set_xlabel("ours − report")
        axis.set_title(title, fontsize=10)
        axis.grid(axis="y", visible=False)
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
        return plots.save(figure, path)
