"""One self-contained HTML page per run, and an index page over all runs.

The run page is a single file that can be mailed, uploaded as a CI artifact or opened from disk: its
figures are embedded as data URIs and it loads nothing else (no script, font or stylesheet from
anywhere). It shows, in order: the comparison with the baseline when there is one, the suite's
tables (the task's tables, as data, with the report's reference columns beside the measured ones), the
history of the headline metrics over the suite's runs, every PNG figure in the run folder, and the
environment the run was measured in. Like every renderer it reads stored results only.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.cells import StoredCell
from harness.compare import baselines
from harness.compare.checks import Outcome
from harness.compare.comparison import Comparison, flatten
from harness.compare.results import RunResults
from harness.compare.stats import SampleStats
from harness.environment import commit_text
from harness.paths import atomic_write
from harness.render.tables import Table, format_cell
from harness.store import ResultsStore, RunInfo
from harness.thresholds import unit

PAGE = "report.html"
INDEX = "index.html"
HISTORY_METRICS = ("test_accuracy", "train_seconds")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
.wide { overflow-x: auto; } table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; } th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.ref, th.ref { background: #f7f7fb; color: #555; }
.regressed { color: #b00020; font-weight: bold; } .improved { color: #1b7f3b; }
.within-noise, .unconfirmed { color: #a66b00; } .unchanged, .new, .not-comparable { color: #666; }
figure { display: inline-block; margin: .5em; vertical-align: top; }
figure img { max-width: 540px; border: 1px solid #eee; } figcaption { font-size: .8em; color: #555; }
.summary { font-size: 1.1em; } .note { color: #555; font-size: .9em; }
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


class Raw(str):
    """A table cell that is already HTML (a link built from escaped parts): not escaped again."""


def esc(value: Any) -> str:
    return value if isinstance(value, Raw) else html.escape(str(value), quote=True)


def page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def html_table(header: list[str], rows: list[list[Any]], numeric: set[int] = frozenset(),
               classes: dict[int, str] | None = None, row_classes: list[str] | None = None) -> str:
    """A plain table; ``numeric`` columns are right-aligned, ``classes`` tags columns (reference ones)."""
    classes = classes or {}
    head = "".join(f"<th class=\"{classes.get(i, '')}\">{esc(h)}</th>" for i, h in enumerate(header))
    lines = [f"<div class=\"wide\"><table><thead><tr>{head}</tr></thead><tbody>"]
    for index, row in enumerate(rows):
        cells = "".join(
            f"<td class=\"{'num ' if i in numeric else ''}{classes.get(i, '')}\">{esc(v)}</td>" for i, v in enumerate(row)
        )
        row_class = f" class=\"{row_classes[index]}\"" if row_classes else ""
        lines.append(f"<tr{row_class}>{cells}</tr>")
    lines.append("</tbody></table></div>")
    return "".join(lines)


# ---------------------------------------------------------------------------------------------------
# Sections


def header_section(run: RunInfo) -> list[str]:
    env = run.environment
    commit = commit_text(env, length=12, missing="unknown", dirty=" (uncommitted changes)")
    title = run.config.get("title") or run.suite
    mirrors = f" — mirrors {run.config['mirrors']}" if run.config.get("mirrors") else ""
    return [
        f"<h1>{esc(title)}{esc(mirrors)}</h1>",
        f"<p>Suite <b>{esc(run.suite)}</b>, run <b>{esc(run.run_id)}</b>, profile <b>{esc(run.profile)}</b>, "
        f"status <b>{esc(run.status)}</b>; created {esc(run.created)}, finished {esc(run.finished or '–')}; "
        f"commit {esc(commit)}.</p>",
    ]


def comparison_section(comparison: Comparison | None) -> list[str]:
    if comparison is None:
        return ["<h2>Comparison with the baseline</h2>", "<p class=\"note\">No baseline was given for this run.</p>"]
    counts = ", ".join(f"{n} {name}" for name, n in comparison.counts().items() if n)
    verdict = "REGRESSED" if comparison.regressions else "no regression"
    rows, row_classes = [], []
    for v in comparison.verdicts:
        if v.metric in ("status", "params") and v.outcome is Outcome.UNCHANGED:
            continue
        change = "–" if v.change is None else f"{v.change:+.2f} {v.change_unit}".rstrip()
        metric_unit = unit(v.metric)
        rows.append([v.row, f"{v.metric} ({metric_unit})" if metric_unit else v.metric, _number(v.baseline),
                     _number(v.current), change, v.check, "–" if v.p_value is None else f"{v.p_value:.3g}",
                     f"{v.samples[0]}/{v.samples[1]}", f"{v.outcome.marker} {v.outcome.value}", v.reason])
        row_classes.append(v.outcome.value.replace(" ", "-"))
    out = [
        "<h2>Comparison with the baseline</h2>",
        f"<p class=\"summary\">Against baseline run <b>{esc(comparison.baseline_id)}</b>: "
        f"<span class=\"{'regressed' if comparison.regressions else 'improved'}\">{verdict}</span> ({esc(counts)}); "
        f"significance level {comparison.alpha:g}, checks {esc(', '.join(comparison.checks))}.</p>",
        html_table(["Row", "Metric (unit)", "Baseline", "Current", "Change", "Check", "p", "n (base/cur)", "Verdict", "Why"],
                   rows, numeric={2, 3, 4, 6, 7}, row_classes=row_classes),
    ]
    out += [f"<p class=\"note\">{esc(note)}</p>" for note in comparison.notes]
    if comparison.environment_changes:
        out.append("<p class=\"note\">Environment changes since the baseline:</p>")
        out.append(html_table(["Entry", "Baseline", "Current"],
                              [[c.key, c.baseline, c.current] for c in comparison.environment_changes]))
    return out


def _number(value: Any) -> str:
    return format_cell(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def table_html(table: Table) -> str:
    """One table as the task built it, the report's columns shaded."""
    return html_table(table.columns, table.formatted_rows(), table.numeric_columns(),
                      dict.fromkeys(table.reference_columns(), "ref"))


def tables_section(tables: Sequence[Table]) -> list[str]:
    """The task's tables, with their notes."""
    out = ["<h2>Tables</h2>"]
    for table in tables:
        out += [f"<h3>{esc(table.title)}</h3>", table_html(table)]
        out += [f"<p class=\"note\">{esc(line)}</p>" for line in table.note.split("\n\n") if line]
    return out if len(out) > 1 else out + ["<p class=\"note\">This run has no tables: no cell finished.</p>"]


def failures_section(cells: Sequence[StoredCell]) -> list[str]:
    """The cells that failed and why; nothing when every cell finished."""
    failed = [stored for stored in cells if not stored.result.ok]
    if not failed:
        return []
    rows = [[s.cell.model, s.cell.backend, s.cell.device, s.cell.seed, s.result.error] for s in failed]
    return ["<h2>Failed cells</h2>", f"<p class=\"summary regressed\">{len(failed)} of {len(cells)} cell(s) failed.</p>",
            html_table(["Model", "Backend", "Device", "Seed", "Error"], rows)]


def run_figures(folder: Path) -> list[tuple[Path, str]]:
    """Every PNG under a run folder with its path as caption: the run's own figures first, then each cell's."""
    paths = sorted(folder.rglob("*.png"), key=lambda p: (len(p.relative_to(folder).parts), p.as_posix()))
    return [(path, path.relative_to(folder).as_posix()) for path in paths]


def figure_html(path: Path, caption: str) -> str:
    """A PNG embedded in the page (the page is one self-contained file), with its caption."""
    return (f"<figure><img src=\"{data_uri(path.read_bytes())}\" alt=\"{esc(caption)}\">"
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def figures_section(folder: Path) -> list[str]:
    """Every figure of the run (:func:`run_figures`), embedded."""
    out = ["<h2>Figures</h2>"] + [figure_html(path, caption) for path, caption in run_figures(folder)]
    return out if len(out) > 1 else out + ["<p class=\"note\">This run wrote no figures.</p>"]


def history_figure(runs: list[RunResults], metrics: tuple[str, ...] = HISTORY_METRICS) -> bytes | None:
    """A PNG with one panel per metric: each row's value over the suite's runs (mean over seeds,
    median for timings, bars from min to max)."""
    series = {metric: baselines.metric_history(runs, metric) for metric in metrics}
    series = {m: rows for m, rows in series.items() if any(s for values in rows.values() for s in values)}
    if len(runs) < 2 or not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, len(series), figsize=(6 * len(series), 3.6), squeeze=False)
    labels = [run.run_id for run in runs]
    for axis, (metric, rows) in zip(axes[0], series.items()):
        for row, values in rows.items():
            points = [(i, s) for i, s in enumerate(values) if isinstance(s, SampleStats)]
            xs = [i for i, _ in points]
            centre = [s.median if "seconds" in metric else s.mean for _, s in points]
            low = [c - s.min for c, (_, s) in zip(centre, points)]
            high = [s.max - c for c, (_, s) in zip(centre, points)]
            axis.errorbar(xs, centre, yerr=[low, high], marker="o", capsize=3, label=row)
        metric_unit = unit(metric)
        axis.set_ylabel(f"{metric} ({metric_unit})" if metric_unit else metric)
        axis.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def history_section(runs: list[RunResults]) -> list[str]:
    out = ["<h2>History</h2>"]
    png = history_figure(runs)
    if png is None:
        return out + ["<p class=\"note\">The first run of this suite and profile: no history yet.</p>"]
    return out + [f"<figure><img src=\"{data_uri(png)}\" alt=\"history\"><figcaption>"
                  f"{esc(', '.join(HISTORY_METRICS))} over the last {len(runs)} runs of this profile</figcaption></figure>"]


def environment_section(environment: dict[str, Any]) -> list[str]:
    rows = [[key, value] for key, value in flatten(environment).items() if key != "calibration.samples"]
    return ["<h2>Environment</h2>", html_table(["Entry", "Value"], rows)]


# ---------------------------------------------------------------------------------------------------
# Pages


def write_run_page(run: RunInfo, folder: Path, cells: Sequence[StoredCell], tables: Sequence[Table],
                   comparison: Comparison | None = None, history: list[RunResults] | None = None) -> Path:
    """Write ``report.html`` into the run folder; returns it."""
    body = header_section(run)
    body += failures_section(cells)
    body += comparison_section(comparison)
    body += tables_section(tables)
    body += history_section(history or [])
    body += figures_section(folder)
    body += environment_section(run.environment)
    path = folder / PAGE
    atomic_write(path, page(f"{run.suite} {run.run_id}", body))
    return path


def write_index(store: ResultsStore, reports: Path) -> Path:
    """``reports/index.html``: every run of the store, newest first, linked to its page where it has one."""
    rows = []
    runs = sorted(store.runs(), key=lambda r: (r.created, r.run_id), reverse=True)
    for run in runs:
        cells = store.cells(run.run_id)
        failed = sum(1 for c in cells if not c.result.ok)
        name: Any = run.run_id
        if (run.folder(reports) / PAGE).exists():
            name = Raw(f"<a href=\"{esc(f'{run.suite}/{run.run_id}/{PAGE}')}\">{esc(run.run_id)}</a>")
        rows.append([run.suite, name, run.profile, run.status, run.created, commit_text(run.environment), len(cells),
                     failed])
    table = html_table(["Suite", "Run", "Profile", "Status", "Created (UTC)", "Commit", "Cells", "Failed"], rows,
                       numeric={6, 7})
    path = reports / INDEX
    atomic_write(path, page("harness runs", ["<h1>harness runs</h1>", table]))
    return path


def write_report(store: ResultsStore, reports: Path, run: RunInfo, tables: Sequence[Table],
                 comparison: Comparison | None = None, history_runs: int = 20, index: bool = True) -> Path:
    """The run's page (its tables, the comparison if given, its suite's recent history) and, with
    ``index``, the index, from the open store. A run being settled leaves the index to after its
    status is committed, so the index never shows a finished run as running."""
    history = [r for r in baselines.runs_of(store, run.suite, run.profile) if r.created <= run.created][-history_runs:]
    path = write_run_page(run, run.folder(reports), store.cells(run.run_id), tables, comparison, history)
    if index:
        write_index(store, reports)
    return path
