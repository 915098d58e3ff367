"""Tables as data: a :class:`Table` (title, columns and rows, a note) that every writer renders.

Tasks build their tables from stored records, laid out like the report's (the report's number and
the difference beside each measured one), and return them; the Markdown and CSV files, the terminal
and the HTML report all render the same objects, so formatting lives in one place and no writer
reads another's output back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table as RichTable

from harness.paths import atomic_write


@dataclass(frozen=True)
class Table:
    """One table of a run: written as ``<stem>.md`` and ``<stem>.csv``, printed, shown in the HTML page."""

    stem: str
    title: str
    frame: pd.DataFrame
    note: str = ""
    #: The columns printed on the terminal, where the full table rarely fits (None: all of them).
    console_columns: Sequence[str] | None = None

    @property
    def columns(self) -> list[str]:
        return [str(column) for column in self.frame.columns]

    def rows(self) -> list[list[Any]]:
        """The cells as Python values (NumPy scalars unwrapped), row by row."""
        return [[_plain(value) for value in row] for row in self.frame.itertuples(index=False)]

    def formatted_rows(self, columns: Sequence[str] | None = None) -> list[list[str]]:
        """The cells as the report prints them (see :func:`format_cell`)."""
        names = self.columns if columns is None else list(columns)
        positions = [self.columns.index(name) for name in names]
        return [[format_cell(row[i], names[k]) for k, i in enumerate(positions)] for row in self.rows()]

    def numeric_columns(self) -> set[int]:
        return {i for i, column in enumerate(self.frame.columns) if pd.api.types.is_numeric_dtype(self.frame[column])}

    def reference_columns(self) -> set[int]:
        """Columns holding the report's numbers (shaded in the HTML page)."""
        return {i for i, column in enumerate(self.columns) if column.lower().startswith(("report", "ref"))}

    def markdown(self) -> str:
        """A GitHub-flavoured Markdown table under a ``##`` title, the note below it."""
        lines = [f"## {self.title}", ""] if self.title else []
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.columns))) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.formatted_rows()]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        return self.frame.to_csv(index=False)

    def rich(self) -> RichTable:
        """The table for the terminal (``console_columns`` only)."""
        columns = list(self.console_columns or self.columns)
        table = RichTable(title=self.title or None, show_lines=False, header_style="bold")
        for index, column in enumerate(columns):
            table.add_column(column, justify="left" if index == 0 else "right", overflow="fold")
        for row in self.formatted_rows(columns):
            table.add_row(*row)
        return table


def write_tables(tables: Iterable[Table], out_dir: Path, console: Console | None) -> list[Path]:
    """Write each table's ``.md`` and ``.csv`` into ``out_dir`` and print it; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for table in tables:
        markdown, csv_path = out_dir / f"{table.stem}.md", out_dir / f"{table.stem}.csv"
        atomic_write(markdown, table.markdown())
        atomic_write(csv_path, table.csv())
        written += [markdown, csv_path]
        if console is not None:
            console.print(table.rich())
            if table.note:
                console.print(table.note, markup=False)
    return written


def difference(measured: Any, reference: Any) -> float | None:
    """measured - reference, or None when either is missing."""
    if _missing(measured) or _missing(reference):
        return None
    return float(measured) - float(reference)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """NumPy scalars as Python numbers, so every writer formats them alike."""
    return value.item() if hasattr(value, "item") else value


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
