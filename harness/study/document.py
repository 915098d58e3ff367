"""The reproduction document of a study run: the report, section by section, with our number beside
each of its numbers, the difference, the tolerance and a verdict.

``reports/<study>/<run_id>/index.html`` (one self-contained file: figures embedded) and ``report.md``
(figures linked to the member runs' folders). At the top, a summary: how many of the report's numbers
were reproduced within their tolerance, how many not, and which; then the report's claims put to the
test; then Task 1 to Task 6, each member suite's tables of the report as checks, its claims and its
figures (with the report's figure numbers); then wall time per suite and the environment.

This stage knows no task: the caller (the study runner) hands in each member run's tables and claim
results, built from stored records. The checks are read off those tables: each column of the report's
numbers is paired with the column of ours that it stands beside (:data:`PAIRS`).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.study import claims as claim_checks
from harness.study.claims import ClaimResult
from harness.paths import atomic_write
from harness.render import html
from harness.render.tables import Table, difference
from harness.store import RunInfo
from harness.suite.study import DEFAULT_TOLERANCES, NOT_JUDGED, Study

PAGE = "index.html"
MARKDOWN = "report.md"
REPRODUCED, NOT_REPRODUCED, NO_RESULT = "reproduced", "not reproduced", "no result"
#: The precision the report trained in; a member run in another trained with settings that differ from the report's.
REPORT_PRECISION = "fp32"

#: A column of the report's numbers -> (the column of ours beside it, first present; the metric whose
#: tolerance applies). ``None`` as the metric: read it off the row (:func:`_row_metric`).
PAIRS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "Report params": (("Params",), "params"),
    "Report test %": (("Test acc %",), "accuracy"),
    "Report train %": (("Train acc %",), "accuracy"),
    "Report s": (("Train s", "Seconds"), "seconds"),
    "Report task 1 %": (("Task 1 %",), "accuracy"),
    "Report task 2 %": (("Task 2 %",), "accuracy"),
    "Report STL %": (("STL %",), "accuracy"),
    "Report MTL %": (("MTL %",), "accuracy"),
    "Report λ": (("Best λ",), "lambda"),
    "Report %": (("Test acc %",), "accuracy"),
    "Report it.": (("Iterations",), "iterations"),
    "Report": (("Ours",), None),
}
CHECK_COLUMNS = ["Row", "Quantity", "Report", "Ours", "Δ", "Tolerance", "Verdict"]


@dataclass(frozen=True)
class ReferenceCheck:
    """One number of the reproduced report (the reference) against ours, judged within a tolerance."""

    table: str
    row: str
    quantity: str
    metric: str
    report: Any
    ours: Any
    tolerance: float | str

    @property
    def delta(self) -> float | int | None:
        if isinstance(self.ours, int) and isinstance(self.report, int):
            return self.ours - self.report  # counts stay counts: "-37", not "-37.00"
        return difference(self.ours, self.report)

    @property
    def verdict(self) -> str:
        if self.tolerance == NOT_JUDGED:
            return NOT_JUDGED
        if self.delta is None:
            return NO_RESULT
        # A hair of slack so that a difference printed as 0.50 against ±0.5 is not failed by rounding.
        return REPRODUCED if abs(self.delta) <= float(self.tolerance) + 1e-9 else NOT_REPRODUCED

    def describe(self) -> str:
        delta = "–" if self.delta is None else f"{self.delta:+.4g}"
        return (f"Table {self.table}, {self.row}, {self.quantity}: ours {_short(self.ours)} vs report "
                f"{_short(self.report)} (Δ {delta}, tolerance {tolerance_text(self.tolerance)})")


def _short(value: Any) -> str:
    return "–" if value is None else f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def tolerance_text(tolerance: float | str) -> str:
    if tolerance == NOT_JUDGED:
        return NOT_JUDGED
    return "exact" if float(tolerance) == 0 else f"±{float(tolerance):g}"


@dataclass
class MemberReport:
    """What the document shows of one member suite's run (built by the caller from stored results)."""

    suite: str
    section: str
    title: str
    mirrors: str
    run: RunInfo | None  # None: not run yet in this study run
    folder: Path | None
    tables: list[Table] = field(default_factory=list)
    #: Report table number -> the stem of the member's table that mirrors it.
    report_tables: dict[str, str] = field(default_factory=dict)
    tolerances: dict[str, float | str] = field(default_factory=dict)
    claims: list[ClaimResult] = field(default_factory=list)
    wall_seconds: float | None = None

    @property
    def precision(self) -> str:
        """The precision the member run trained in (``train.precision``; fp32 where it predates the setting)."""
        config = self.run.config if self.run else {}
        return str((config.get("train") or {}).get("precision") or REPORT_PRECISION)

    @functools.cached_property
    def checks(self) -> dict[str, list[ReferenceCheck]]:
        """Report table number -> its checks (an empty list when the member's table is missing); built once."""
        by_stem = {table.stem: table for table in self.tables}
        tolerances = {**DEFAULT_TOLERANCES, **self.tolerances}
        return {number: checks_of(by_stem[stem], number, tolerances) if stem in by_stem else []
                for number, stem in self.report_tables.items()}


def checks_of(table: Table, number: str, tolerances: dict[str, float | str]) -> list[ReferenceCheck]:
    """Every number of the report in ``table``, paired with ours (rows without a report number are left out)."""
    columns = table.columns
    pairs = sorted(((report, next(c for c in ours if c in columns), metric)
                    for report, (ours, metric) in PAIRS.items() if report in columns and any(c in columns for c in ours)),
                   key=lambda pair: columns.index(pair[0]))  # in the table's own order
    paired = {name for report, ours, _ in pairs for name in (report, ours)}
    first_paired = min((columns.index(name) for name in paired), default=len(columns))
    label_columns = columns[:max(first_paired, 1)]
    out = []
    for row in table.frame.to_dict("records"):
        label = " · ".join(_label(row[c], c) for c in label_columns)
        for report, ours, metric in pairs:
            reference = _value(row[report])
            if reference is None:
                continue
            metric = metric or _row_metric(row)
            quantity = metric if ours == "Ours" else ours  # PCA's table names the quantity in its rows
            out.append(ReferenceCheck(number, label, quantity, metric, reference, _value(row[ours]),
                                      tolerances.get(metric, NOT_JUDGED)))
    return out


def _label(value: Any, column: str) -> str:
    return f"{column} {value:g}" if isinstance(value, float) else str(value)


def _value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _row_metric(row: dict[str, Any]) -> str:
    # PCA's table puts percentages of variance and component counts in the same Ours/Report columns.
    return "components" if "components" in str(row.get("Quantity", "")) else "variance"


def check_table(checks: Sequence[ReferenceCheck], number: str, title: str) -> Table:
    rows = [[c.row, c.quantity, c.report, c.ours, c.delta, tolerance_text(c.tolerance), c.verdict] for c in checks]
    return Table(f"table_{number}", f"Table {number}: {title}", pd.DataFrame(rows, columns=CHECK_COLUMNS, dtype=object))


def claims_table(results: Sequence[ClaimResult]) -> Table:
    rows = [row for result in results for row in result.rows()]
    return Table("claims", "The report's claims", pd.DataFrame(rows, columns=claim_checks.HEADER, dtype=object))


@dataclass
class Document:
    """The whole document as data: the HTML and Markdown writers render the same pieces."""

    study: Study
    run: RunInfo
    members: list[MemberReport]

    def checks(self) -> list[ReferenceCheck]:
        return [check for member in self.members for checks in member.checks.values() for check in checks]

    def claims(self) -> list[ClaimResult]:
        return [result for member in self.members for result in member.claims]

    def summary(self) -> list[str]:
        """The summary's lines: the counts, then every number not reproduced."""
        checks = self.checks()
        counts = {v: sum(1 for c in checks if c.verdict == v) for v in (REPRODUCED, NOT_REPRODUCED, NOT_JUDGED, NO_RESULT)}
        judged = counts[REPRODUCED] + counts[NOT_REPRODUCED]
        lines = [f"{counts[REPRODUCED]} of the report's {judged} judged numbers reproduced within their tolerance, "
                 f"{counts[NOT_REPRODUCED]} not; {counts[NOT_JUDGED]} not judged (e.g. times, measured on another machine)"
                 + (f"; {counts[NO_RESULT]} without a result of ours" if counts[NO_RESULT] else "") + "."]
        missing = [f"{number} ({m.suite})" for m in self.members for number, found in m.checks.items() if not found]
        if missing:
            lines.append(f"Tables without results in this run: {', '.join(missing)}.")
        other = [m for m in self.members if m.run and m.precision != REPORT_PRECISION]
        if other:
            numbers = sum(len(checks) for m in other for checks in m.checks.values())
            lines.append(f"Settings that differ from the report's: {numbers} of these numbers come from runs trained in "
                         f"{', '.join(sorted({m.precision for m in other}))}, the report trained in float32 "
                         f"({', '.join(m.suite for m in other)}).")
        lines.append(f"Claims: {claim_checks.summary(self.claims())}.")
        return lines

    def not_reproduced(self) -> list[str]:
        return [check.describe() for check in self.checks() if check.verdict == NOT_REPRODUCED]

    def sections(self) -> dict[str, list[MemberReport]]:
        out: dict[str, list[MemberReport]] = {}
        for member in self.members:
            out.setdefault(member.section, []).append(member)
        return out

    def wall_table(self) -> Table:
        rows = [[m.suite, m.run.run_id if m.run else "–", m.run.status if m.run else "not run", m.wall_seconds]
                for m in self.members]
        total = sum(m.wall_seconds or 0.0 for m in self.members)
        rows.append(["all", self.run.run_id, self.run.status, total])
        return Table("wall_time", "Wall time", pd.DataFrame(rows, columns=["Suite", "Run", "Status", "Wall s"],
                                                            dtype=object))

    def environment(self) -> dict[str, Any]:
        """The richest member environment (the one with the frameworks' versions), else the study's."""
        environments = [m.run.environment for m in self.members if m.run and m.run.environment]
        return max(environments, key=len) if environments else self.run.environment


def write_document(document: Document, folder: Path) -> Path:
    """Write ``index.html`` and ``report.md`` into ``folder``; returns the HTML file."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / MARKDOWN, markdown(document, folder))
    path = folder / PAGE
    atomic_write(path, html.page(f"{document.study.title} {document.run.run_id}", html_body(document)))
    return path


def _heading(document: Document) -> str:
    run = document.run
    return (f"Study {run.suite}, run {run.run_id}, profile {run.profile}, status {run.status}; "
            f"created {run.created}, finished {run.finished or '–'}.")


def html_body(document: Document) -> list[str]:
    body = [f"<h1>{html.esc(document.study.title)}</h1>", f"<p>{html.esc(_heading(document))}</p>",
            "<h2>Summary</h2>"]
    body += [f"<p class=\"summary\">{html.esc(line)}</p>" for line in document.summary()]
    misses = document.not_reproduced()
    if misses:
        body.append("<p>Not reproduced:</p><ul>" + "".join(f"<li>{html.esc(m)}</li>" for m in misses) + "</ul>")
    if document.claims():
        body += ["<h2>The report's claims</h2>", html.table_html(claims_table(document.claims())),
                 f"<p class=\"note\">{html.esc(CLAIMS_NOTE)}</p>"]
    for section, members in document.sections().items():
        body.append(f"<h2>{html.esc(section)}</h2>")
        for member in members:
            body += _html_member(member)
    body += ["<h2>Wall time</h2>", html.table_html(document.wall_table())]
    body += html.environment_section(document.environment())
    return body


CLAIMS_NOTE = ("Effect: mean difference (higher − lower) over seeds with its two-sided 95% confidence interval, "
               "Spearman's ρ for a correlation, the share of records that hold for a check of every record. "
               "p: one-sided, paired by seed where both sides have the same seeds (scipy.stats). A claim is "
               "supported only if every comparison is; one contradicted comparison contradicts it.")


def _member_line(member: MemberReport) -> str:
    wall = "–" if member.wall_seconds is None else f"{member.wall_seconds:.1f} s"
    run = f"run {member.run.run_id} ({member.run.status})" if member.run else "not run in this study run"
    return (f"Suite {member.suite}, {run}; precision {member.precision}"
            f"{'' if member.precision == REPORT_PRECISION else ' (the report: fp32)'}; wall time {wall}. "
            f"The report: {member.mirrors or '–'}.")


def _html_member(member: MemberReport) -> list[str]:
    out = [f"<h3>{html.esc(member.title)}</h3>", f"<p class=\"note\">{html.esc(_member_line(member))}</p>"]
    titles = {table.stem: table.title for table in member.tables}
    for number, checks in member.checks.items():
        table = check_table(checks, number, titles.get(member.report_tables[number], member.title))
        out += [f"<h4>{html.esc(table.title)}</h4>",
                html.table_html(table) if checks else "<p class=\"note\">No results for this table in this run.</p>"]
    if member.claims:
        out += [f"<h4>Claims ({html.esc(member.suite)})</h4>", html.table_html(claims_table(member.claims))]
    figures = _figures(member)
    if figures:
        out.append(f"<h4>Figures (ours; the report's: {html.esc(member.mirrors or '–')})</h4>")
        out += [html.figure_html(path, caption) for path, caption in figures]
    return out


def _figures(member: MemberReport) -> list[tuple[Path, str]]:
    """The member run's PNGs, its own first, then each cell's (as on the run's page)."""
    if member.folder is None or not member.folder.is_dir():
        return []
    return [(path, f"{member.suite}: {caption}") for path, caption in html.run_figures(member.folder)]


def markdown(document: Document, folder: Path) -> str:
    lines = [f"# {document.study.title}", "", _heading(document), "", "## Summary", ""]
    lines += [f"{line}\n" for line in document.summary()]
    lines += [f"- {miss}" for miss in document.not_reproduced()]
    if document.claims():
        lines += ["", claims_table(document.claims()).markdown(), CLAIMS_NOTE]
    for section, members in document.sections().items():
        lines += ["", f"## {section}"]
        for member in members:
            lines += ["", f"### {member.title}", "", _member_line(member), ""]
            titles = {table.stem: table.title for table in member.tables}
            for number, checks in member.checks.items():
                table = check_table(checks, number, titles.get(member.report_tables[number], member.title))
                lines.append(table.markdown().replace("## ", "#### ", 1) if checks
                             else f"#### {table.title}\n\nNo results for this table in this run.\n")
            figures = _figures(member)
            if figures:
                lines += [f"#### Figures (ours; the report's: {member.mirrors or '–'})", ""]
                lines += [f"![{caption}]({os.path.relpath(path, folder)})" for path, caption in figures]
    lines += ["", document.wall_table().markdown()]
    return "\n".join(lines) + "\n"
