"""The reproduction document of a study run: the report, section by section, with our number beside
each of its numbers, the difference, the tolerance and a verdict.

``reports/<study>/<run_id>/index.html`` (one self-contained file: figures embedded) and ``report.md``
(figures linked). At the top, whether this run can judge the report at all (a run whose settings differ
from the report's judges nothing, :mod:`harness.study.settings`), what each verdict means
(:mod:`harness.study.verdicts`) and the counts, seeded verdicts apart from those on 1 or 2 seeds; then,
per report table, its forest plot (:mod:`harness.study.forest`) and the gaps with their declared causes;
then the report's claims; then Task 1 to Task 6, each member's tables as checks (seed spread, notes,
both frameworks side by side where both ran) and its figures; then wall time and the environment.

This stage knows no task: the caller (the study runner) hands in each member run's tables and claim
results, built from stored records. The checks are read off those tables, one table per seed: each
column of the report's numbers is paired with the column of ours that it stands beside (:data:`PAIRS`),
and ours over the seeds are gathered into one check.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from harness.study import claims as claim_checks
from harness.study import forest, verdicts
from harness.study.claims import ClaimResult
from harness.study.verdicts import NO_RESULT, NOT_JUDGED, SETTINGS_DIFFER, SeedSpread
from harness.paths import atomic_write
from harness.render import html
from harness.render.tables import Table, difference
from harness.store import RunInfo
from harness.suite.evidence import ChanceRow, Note
from harness.suite.study import DEFAULT_TOLERANCES, Study

PAGE = "index.html"
MARKDOWN = "report.md"
FIGURES = "figures"
REPRODUCED, NOT_REPRODUCED = verdicts.REPRODUCED, verdicts.NOT_REPRODUCED
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
CHECK_COLUMNS = ["Row", "Quantity", "Report", "Ours", "95% CI", "Seed range", "Seeds", "Δ", "Tolerance", "Verdict",
                 "Notes"]
#: The label column that names the framework: rows that differ only in it are shown side by side.
BACKEND = "Backend"


@dataclass(frozen=True)
class ReferenceCheck:
    """One number of the reproduced report (the reference) against ours over the run's seeds."""

    table: str
    row: str
    quantity: str
    metric: str
    report: Any
    values: tuple[Any, ...]  # ours, one per seed of the run (empty: no result)
    tolerance: float | str
    keys: dict[str, Any] = field(default_factory=dict, compare=False)  # the row's label columns -> values
    differ: tuple[str, ...] = ()  # the run's settings that are not the report's (in words)
    chance: ChanceRow | None = None
    test_images: tuple[int, int] = (10_000, 10_000)  # ours, the report's (for a chance row's interval)
    notes: tuple[Note, ...] = ()

    @property
    def ours(self) -> Any:
        """Our mean over seeds; a count that every seed gives alike stays a count."""
        if not self.values:
            return None
        if all(isinstance(v, int) for v in self.values) and len(set(self.values)) == 1:
            return self.values[0]
        return self.spread.mean

    @property
    def spread(self) -> SeedSpread:
        return SeedSpread(tuple(float(v) for v in self.values))

    @property
    def largest_share(self) -> float:
        """What always guessing the most common class scores (a chance row's; 1 / classes unless declared)."""
        return self.chance.largest_share or 1 / self.chance.classes

    @property
    def delta(self) -> float | int | None:
        if isinstance(self.ours, int) and isinstance(self.report, int):
            return self.ours - self.report  # counts stay counts: "-37", not "-37.00"
        return difference(self.ours, self.report)

    @property
    def verdict(self) -> str:
        if self.differ:
            return SETTINGS_DIFFER
        if self.tolerance == NOT_JUDGED and self.chance is None:
            return NOT_JUDGED
        if self.ours is None:
            return NO_RESULT
        if self.chance is not None:
            return verdicts.chance_verdict(self.report, self.test_images[1], self.spread, self.test_images[0],
                                           self.largest_share)
        return verdicts.seed_verdict(self.report, self.spread, float(self.tolerance))

    @property
    def is_gap(self) -> bool:
        """Whether the summary lists it: not reproduced, within seed noise, or a chance row above chance."""
        verdict = self.verdict
        return verdict.startswith(NOT_REPRODUCED) or verdict == verdicts.WITHIN_NOISE or verdict.startswith("above chance")

    def tolerance_text(self) -> str:
        if self.chance is not None:
            ceiling = verdicts.chance_ceiling(self.largest_share, self.test_images[0])
            return f"chance: at most {ceiling:.2f} % on {self.test_images[0]:,} (a guess of {100 * self.largest_share:.3g} %)"
        return tolerance_text(self.tolerance)

    def describe(self, decimals: int = 2) -> str:
        """One line for the summary: ours (with the seed spread), the report's, Δ at ``decimals``, the verdict."""
        spread = self.spread
        extra = ""
        if spread.interval is not None:
            (low, high), (first, last) = spread.interval, spread.low_high
            extra = (f" (95 % CI {low:.{decimals}f}–{high:.{decimals}f}, seeds {first:.{decimals}f}–"
                     f"{last:.{decimals}f})")
        delta = "–" if self.delta is None else _fixed(self.delta, decimals, signed=True)
        return (f"{self.row}, {self.quantity}: ours {_fixed(self.ours, decimals)}{extra} vs the report's "
                f"{_fixed(self.report, decimals)}, Δ {delta} ({self.tolerance_text()}): {self.verdict}")

    def cause(self) -> str:
        """Why the report's setting leaves it untrained, else the first declared note, else ''."""
        if self.chance is not None:
            return self.chance.text
        return self.notes[0].line() if self.notes else ""


def _fixed(value: Any, decimals: int, signed: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:+,}" if signed else f"{value:,}"
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def decimals_of(value: Any) -> int:
    """How many decimals the report prints a number with (97.69: 2, 10.2: 1, 154: 0)."""
    if not isinstance(value, float):
        return 0
    text = repr(value)
    return min(len(text.split(".")[1]), 4) if "." in text and "e" not in text else 2


def table_decimals(checks: Sequence[ReferenceCheck]) -> dict[str, int]:
    """Per metric, the table's own precision: the most decimals among the report's numbers."""
    out: dict[str, int] = {}
    for check in checks:
        out[check.metric] = max(out.get(check.metric, 0), decimals_of(check.report))
    return out


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
    #: Seed -> the member's tables over that seed's cells alone (empty: ``tables`` stand for one seed).
    seed_tables: dict[int, list[Table]] = field(default_factory=dict)
    #: The run's settings that are not the report's, in words ([] = the report's settings).
    differing: list[str] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    chance: list[ChanceRow] = field(default_factory=list)
    #: Test images: this run's, the report's (a chance row's interval is for each side's test-set size).
    test_images: tuple[int, int] = (10_000, 10_000)

    @property
    def precision(self) -> str:
        """The precision the member run trained in (``train.precision``; fp32 where it predates the setting)."""
        config = self.run.config if self.run else {}
        return str((config.get("train") or {}).get("precision") or REPORT_PRECISION)

    @functools.cached_property
    def checks(self) -> dict[str, list[ReferenceCheck]]:
        """Report table number -> its checks (an empty list when the member's table is missing); built once."""
        tolerances = {**DEFAULT_TOLERANCES, **self.tolerances}
        per_seed = list(self.seed_tables.values()) or [self.tables]
        out = {}
        for number, stem in self.report_tables.items():
            found = [table for tables in per_seed for table in tables if table.stem == stem]
            out[number] = [self._annotated(check) for check in seeded_checks(found, number, tolerances)]
        return out

    def _annotated(self, check: ReferenceCheck) -> ReferenceCheck:
        where = (check.table, check.keys, check.quantity)
        return replace(check, differ=tuple(self.differing), test_images=self.test_images,
                       chance=next((row for row in self.chance if row.covers(*where)), None),
                       # The notes about this very row or quantity first: the likelier cause.
                       notes=tuple(sorted((note for note in self.notes if note.covers(*where)),
                                          key=lambda note: (not note.rows, note.quantity is None))))

    @property
    def judged_claims(self) -> list[ClaimResult]:
        """The claims, each *not tested: settings differ* when the run's settings are not the report's."""
        if not self.differing:
            return self.claims
        return [replace(result, verdict=claim_checks.NOT_TESTED_SETTINGS) for result in self.claims]

    def table_notes(self, number: str) -> list[Note]:
        """The notes about the report's table ``number`` as a whole (not about some rows or one quantity)."""
        return [n for n in self.notes if (not n.tables or number in n.tables) and not n.rows and n.quantity is None]


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
        keys = {c: _value(row[c]) for c in label_columns}
        label = " · ".join(_label(row[c], c) for c in label_columns)
        for report, ours, metric in pairs:
            reference = _value(row[report])
            if reference is None:
                continue
            metric = metric or _row_metric(row)
            quantity = metric if ours == "Ours" else ours  # PCA's table names the quantity in its rows
            value = _value(row[ours])
            out.append(ReferenceCheck(number, label, quantity, metric, reference, () if value is None else (value,),
                                      tolerances.get(metric, NOT_JUDGED), keys))
    return out


def seeded_checks(tables: Sequence[Table], number: str, tolerances: dict[str, float | str]) -> list[ReferenceCheck]:
    """The checks of one report table over tables of the same layout, one per seed: ours gathered per number."""
    merged: dict[tuple[str, str], ReferenceCheck] = {}
    for table in tables:
        for check in checks_of(table, number, tolerances):
            key = (check.row, check.quantity)
            known = merged.get(key)
            merged[key] = check if known is None else replace(known, values=known.values + check.values)
    return list(merged.values())


def _label(value: Any, column: str) -> str:
    return f"{column} {value:g}" if isinstance(value, float) else str(value)


def _value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _row_metric(row: dict[str, Any]) -> str:
    # PCA's table puts percentages of variance and component counts in the same Ours/Report columns.
    return "components" if "components" in str(row.get("Quantity", "")) else "variance"


def check_table(checks: Sequence[ReferenceCheck], number: str, title: str,
                notes: Sequence[Note] = ()) -> Table:
    """The report table's checks; ``notes`` numbered as the Notes column cites them ([1], [2])."""
    rows = []
    for c in checks:
        spread = c.spread
        count = isinstance(c.ours, int)  # every seed gave the same count: no spread to show
        interval = "–" if spread.interval is None or count else "{:.2f}–{:.2f}".format(*spread.interval)
        seed_range = "–" if spread.n < 2 or count else "{:.2f}–{:.2f}".format(*spread.low_high)
        cited = "".join(f"[{notes.index(n) + 1}]" for n in c.notes if n in notes)
        rows.append([c.row, c.quantity, c.report, c.ours, interval, seed_range, spread.n or "–", c.delta,
                     c.tolerance_text(), c.verdict, cited])
    return Table(f"table_{number}", f"Table {number}: {title}", pd.DataFrame(rows, columns=CHECK_COLUMNS, dtype=object))


def cited_notes(checks: Sequence[ReferenceCheck]) -> list[Note]:
    """The notes the checks cite, each once, in first-cited order."""
    out: list[Note] = []
    for note in (note for check in checks for note in check.notes):
        if note not in out:  # notes are not hashable (pydantic models)
            out.append(note)
    return out


def frameworks_table(checks: Sequence[ReferenceCheck], number: str) -> Table | None:
    """Each judged number with every framework's value side by side, and their difference (None unless the
    table has rows of two or more backends)."""
    backends = list(dict.fromkeys(c.keys[BACKEND] for c in checks if BACKEND in c.keys))
    if len(backends) < 2:
        return None
    grouped: dict[tuple[str, str], dict[str, ReferenceCheck]] = {}
    for check in checks:
        if BACKEND in check.keys and not isinstance(check.tolerance, str):
            row = " · ".join(str(_label(v, k)) for k, v in check.keys.items() if k != BACKEND)
            grouped.setdefault((row, check.quantity), {})[check.keys[BACKEND]] = check
    rows = []
    for (row, quantity), by_backend in grouped.items():
        values = [by_backend[b].ours if b in by_backend else None for b in backends]
        report = next(iter(by_backend.values())).report
        rows.append([row, quantity, report, *values, difference(values[-1], values[0])])
    columns = ["Row", "Quantity", "Report", *backends, f"Δ {backends[-1]} − {backends[0]}"]
    return Table(f"frameworks_{number}", f"Table {number}: frameworks side by side",
                 pd.DataFrame(rows, columns=columns, dtype=object))


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
        return [result for member in self.members for result in member.judged_claims]

    def differing(self) -> dict[str, list[str]]:
        """Member -> its settings that are not the report's, for every member run that has any."""
        return {m.suite: m.differing for m in self.members if m.run is not None and m.differing}

    def judges_nothing(self) -> bool:
        """Whether no member ran at the report's settings (a smoke run): no number judged, no claim tested."""
        ran = [m for m in self.members if m.run is not None]
        return bool(ran) and all(m.differing for m in ran)

    def banner(self) -> str | None:
        """The line at the top when settings differ: why the numbers (some or all) are not judged."""
        differing = self.differing()
        if not differing:
            return None
        which = "; ".join(f"{suite}: {', '.join(settings)}" for suite, settings in differing.items())
        if self.judges_nothing():
            return ("Nothing here is judged: this run's settings differ from the report's, so none of its numbers "
                    "can reproduce or fail to reproduce the report's, and none of the report's claims is tested. "
                    f"Settings that differ: {which}. Run profile=full (or a seeded profile) for verdicts.")
        return (f"Not judged, settings differ from the report's ({which}): those suites' numbers and claims "
                "are shown but neither count as reproduced nor as not.")

    def summary(self) -> list[str]:
        """The summary's lines: the counts (seeded apart from 1-2 seeds, chance rows apart), missing tables, claims."""
        checks = self.checks()
        by = {}
        for check in checks:
            by.setdefault(check.verdict, []).append(check)

        def count(*names: str) -> int:
            return sum(len(by.get(name, [])) for name in names)

        lines = []
        seeded = count(verdicts.REPRODUCED, verdicts.WITHIN_NOISE, verdicts.NOT_REPRODUCED)
        if seeded:
            lines.append(f"Over 3 or more seeds: {count(verdicts.REPRODUCED)} of the report's {seeded} judged numbers "
                         f"reproduced, {count(verdicts.WITHIN_NOISE)} within seed noise, "
                         f"{count(verdicts.NOT_REPRODUCED)} not reproduced.")
        few = [c for c in checks if c.verdict.endswith(" seed)") or c.verdict.endswith(" seeds)")]
        if few:
            reproduced = sum(1 for c in few if c.verdict.startswith(REPRODUCED))
            lines.append(f"On 1 or 2 seeds (seed noise unknown, counted apart): {reproduced} of the report's {len(few)} "
                         f"judged numbers reproduced within their tolerance, {len(few) - reproduced} not.")
        chance = [c for c in checks if c.chance is not None and c.verdict != SETTINGS_DIFFER and c.ours is not None]
        if chance:
            at = sum(1 for c in chance if c.verdict == verdicts.AT_CHANCE)
            lines.append(f"{len(chance)} numbers the report's own setting leaves untrained, judged against chance: "
                         f"{at} no better than chance on both sides, {len(chance) - at} above chance.")
        others = [f"{count(SETTINGS_DIFFER)} not judged: settings differ" if count(SETTINGS_DIFFER) else "",
                  f"{count(NOT_JUDGED)} not judged (times and counts measured or counted differently)"
                  if count(NOT_JUDGED) else "",
                  f"{count(NO_RESULT)} without a result of ours" if count(NO_RESULT) else ""]
        if any(others):
            lines.append("; ".join(o for o in others if o).capitalize() + ".")
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

    def by_table(self) -> list[tuple[str, MemberReport, list[ReferenceCheck]]]:
        """Every report table with its member and checks, in the study's order."""
        return [(number, m, checks) for m in self.members for number, checks in m.checks.items()]

    def gaps(self, checks: Sequence[ReferenceCheck]) -> list[str]:
        """The summary's lines for one table: each gap at the table's own precision, with its declared cause."""
        decimals = table_decimals(checks)
        return [check.describe(decimals.get(check.metric, 2))
                + (f"; possible cause: {check.cause()}" if check.cause() else "; cause: unknown")
                for check in checks if check.is_gap]

    def not_reproduced(self) -> list[str]:
        """Every gap of the document (see :meth:`gaps`), table by table."""
        return [f"Table {number}, {line}" for number, _, checks in self.by_table() for line in self.gaps(checks)]

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


def draw_figures(document: Document, folder: Path) -> dict[str, Path]:
    """Each report table's forest plot into ``folder/figures``; report table number -> its PNG."""
    out = {}
    for number, member, checks in document.by_table():
        title = f"Table {number} ({member.suite}): ours − the report's"
        if member.differing:
            title += "\n(settings differ from the report's: not judged)"
        path = forest.forest(checks, title, folder / FIGURES / f"table_{number.replace(' ', '_')}.png")
        if path is not None:
            out[number] = path
    return out


def write_document(document: Document, folder: Path) -> Path:
    """Write ``index.html`` and ``report.md`` into ``folder``; returns the HTML file."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = draw_figures(document, folder)
    atomic_write(folder / MARKDOWN, markdown(document, folder, figures))
    path = folder / PAGE
    atomic_write(path, html.page(f"{document.study.title} {document.run.run_id}", html_body(document, figures)))
    return path


def _heading(document: Document) -> str:
    run = document.run
    return (f"Study {run.suite}, run {run.run_id}, profile {run.profile}, status {run.status}; "
            f"created {run.created}, finished {run.finished or '–'}.")


def definitions() -> list[tuple[str, str]]:
    """The verdicts' labels and what each means."""
    return list(verdicts.DEFINITIONS.items())


def html_body(document: Document, figures: dict[str, Path] | None = None) -> list[str]:
    figures = figures or {}
    body = [FOREST_STYLE, f"<h1>{html.esc(document.study.title)}</h1>"]
    banner = document.banner()
    if banner:
        body.append(f"<p class=\"summary banner\"><strong>{html.esc(banner)}</strong></p>")
    body += [f"<p>{html.esc(_heading(document))}</p>", "<h2>Summary</h2>"]
    body += [f"<p class=\"summary\">{html.esc(line)}</p>" for line in document.summary()]
    body.append("<details><summary>What the verdicts mean</summary><dl>" + "".join(
        f"<dt>{html.esc(label)}</dt><dd>{html.esc(text)}</dd>" for label, text in definitions()) + "</dl></details>")
    for number, member, checks in document.by_table():
        gaps = document.gaps(checks)
        body.append(f"<h3>Table {html.esc(number)} ({html.esc(member.suite)})</h3>")
        if number in figures:
            body.append(f"<div class=\"forest\">{html.figure_html(figures[number], f'Table {number}: {FIGURE_CAPTION}')}</div>")
        body += [f"<p class=\"note\">{html.esc(n.line())}</p>" for n in member.table_notes(number)]
        if gaps:
            body.append("<ul>" + "".join(f"<li>{html.esc(line)}</li>" for line in gaps) + "</ul>")
        elif checks and not member.differing:
            body.append("<p class=\"note\">No gap beyond the tolerance.</p>")
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


#: The forest plots are the summary's pictures: the page's width, not a thumbnail as a run's figures are.
FOREST_STYLE = "<style>.forest figure { display: block; } .forest figure img { width: 100%; max-width: 1100px; }</style>"
FIGURE_CAPTION = ("ours − the report's number per row (0 = the report's); green band: the tolerance; dot: our mean; "
                  "thick bar: its 95 % confidence interval; thin line: the seed range. Chance rows, times and exact "
                  "counts are in the table.")
CLAIMS_NOTE = ("Effect: mean difference (higher − lower) over seeds with its two-sided 95% confidence interval, "
               "Spearman's ρ for a correlation, the share of records that hold for a check of every record. "
               "p: one-sided, paired by seed where both sides have the same seeds (scipy.stats). A claim is "
               "supported only if every comparison is; one contradicted comparison contradicts it. Not tested: "
               "settings differ: the run's settings are not the report's.")


def _member_line(member: MemberReport) -> str:
    wall = "–" if member.wall_seconds is None else f"{member.wall_seconds:.1f} s"
    run = f"run {member.run.run_id} ({member.run.status})" if member.run else "not run in this study run"
    settings = (f" Settings that differ from the report's: {', '.join(member.differing)}." if member.differing
                else "")
    precision = f"precision {member.precision}" + ("" if member.precision == REPORT_PRECISION else " (the report: fp32)")
    return f"Suite {member.suite}, {run}; {precision}; wall time {wall}. The report: {member.mirrors or '–'}.{settings}"


def _member_tables(member: MemberReport) -> list[tuple[str, Table | None, list[Note], Table | None]]:
    """Per report table: its check table (None: no results), the notes it cites, the frameworks table."""
    titles = {table.stem: table.title for table in member.tables}
    out = []
    for number, checks in member.checks.items():
        notes = cited_notes(checks)
        title = titles.get(member.report_tables[number], member.title)
        out.append((number, check_table(checks, number, title, notes) if checks else None, notes,
                    frameworks_table(checks, number)))
    return out


def _html_member(member: MemberReport) -> list[str]:
    out = [f"<h3>{html.esc(member.title)}</h3>", f"<p class=\"note\">{html.esc(_member_line(member))}</p>"]
    for number, table, notes, frameworks in _member_tables(member):
        if table is None:
            out += [f"<h4>Table {html.esc(number)}</h4>", "<p class=\"note\">No results for this table in this run.</p>"]
            continue
        out += [f"<h4>{html.esc(table.title)}</h4>", html.table_html(table)]
        out += [f"<p class=\"note\">[{i}] {html.esc(note.line())}</p>" for i, note in enumerate(notes, 1)]
        if frameworks is not None:
            out += [f"<h4>{html.esc(frameworks.title)}</h4>", html.table_html(frameworks)]
    if member.claims:
        out += [f"<h4>Claims ({html.esc(member.suite)})</h4>", html.table_html(claims_table(member.judged_claims))]
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


def markdown(document: Document, folder: Path, figures: dict[str, Path] | None = None) -> str:
    figures = figures or {}
    lines = [f"# {document.study.title}", ""]
    banner = document.banner()
    if banner:
        lines += [f"**{banner}**", ""]
    lines += [_heading(document), "", "## Summary", ""]
    lines += [f"{line}\n" for line in document.summary()]
    lines += ["What the verdicts mean:", ""] + [f"- *{label}*: {text}" for label, text in definitions()]
    for number, member, checks in document.by_table():
        lines += ["", f"### Table {number} ({member.suite})", ""]
        if number in figures:
            lines += [f"![Table {number}: {FIGURE_CAPTION}]({os.path.relpath(figures[number], folder)})", ""]
        lines += [note.line() for note in member.table_notes(number)]
        lines += [f"- {line}" for line in document.gaps(checks)]
    if document.claims():
        lines += ["", claims_table(document.claims()).markdown(), CLAIMS_NOTE]
    for section, members in document.sections().items():
        lines += ["", f"## {section}"]
        for member in members:
            lines += ["", f"### {member.title}", "", _member_line(member), ""]
            for number, table, notes, frameworks in _member_tables(member):
                if table is None:
                    lines.append(f"#### Table {number}\n\nNo results for this table in this run.\n")
                    continue
                lines.append(table.markdown().replace("## ", "#### ", 1))
                lines += [f"[{i}] {note.line()}\n" for i, note in enumerate(notes, 1)]
                if frameworks is not None:
                    lines.append(frameworks.markdown().replace("## ", "#### ", 1))
            figures_of = _figures(member)
            if figures_of:
                lines += [f"#### Figures (ours; the report's: {member.mirrors or '–'})", ""]
                lines += [f"![{caption}]({os.path.relpath(path, folder)})" for path, caption in figures_of]
    lines += ["", document.wall_table().markdown()]
    return "\n".join(lines) + "\n"
