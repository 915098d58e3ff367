"""Tables: one DataFrame written as Markdown and CSV and printed with rich.

Tasks build a DataFrame laid out like the report's table (with the report's number and the
difference beside each measured one) and hand it here; formatting lives in one place.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from harness.paths import atomic_write


def difference(measured: Any, reference: Any) -> float | None:
    """measured - reference, or None when either is missing."""
    if _missing(measured) or _missing(reference):
        return None
    return float(measured) - float(reference)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_cell(value: Any, column: str = "") -> str:
    """Numbers as the report prints them: thousands separators for counts, 2 decimals otherwise."""
    if _missing(value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    if isinstance(value, float):
        signed = column.startswith("Δ") or column.lower().startswith("diff")
        return f"{value:+.2f}" if signed else f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.3g}"
    return str(value)


def to_markdown(frame: pd.DataFrame, title: str = "", note: str = "") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    header = [str(c) for c in frame.columns]
    lines = [f"## {title}", ""] if title else []
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(format_cell(row[c], str(c)) for c in frame.columns) + " |")
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def rich_table(frame: pd.DataFrame, title: str = "") -> Table:
    """The same table for the terminal."""
    table = Table(title=title or None, show_lines=False, header_style="bold")
    for index, column in enumerate(frame.columns):
        table.add_column(str(column), justify="left" if index == 0 else "right", overflow="fold")
    for _, row in frame.iterrows():
        table.add_row(*(format_cell(row[c], str(c)) for c in frame.columns))
    return table


def write_table(frame: pd.DataFrame, out_dir: Path, stem: str, title: str, console: Console | None,
                note: str = "", console_columns: list[str] | None = None) -> list[Path]:
    """Write ``stem.md`` and ``stem.csv`` and print the table; returns the files written.

    ``console_columns`` picks the columns printed on the terminal, where the full table rarely fits.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown, csv_path = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
    atomic_write(markdown, to_markdown(frame, title, note))
    atomic_write(csv_path, frame.to_csv(index=False))
    if console is not None:
        console.print(rich_table(frame[console_columns] if console_columns else frame, title))
        if note:
            console.print(note, markup=False)
    return [markdown, csv_path]
