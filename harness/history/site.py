"""``harness publish``: the history of every stored run as a static site, asv-style.

One page per suite plus an index, each a single HTML file with its graphs drawn as inline SVG and a
few lines of inline script (a legend that hides and shows series): nothing is loaded from elsewhere,
so the site works from ``file://``, as a CI artifact and on GitHub Pages alike. Per suite it shows

- the calibration workload's seconds per run, one series per machine: a machine that got slower
  moves this line, code that got slower does not;
- per model and metric (test accuracy, training seconds, seconds to the target accuracy) the value
  of each run over time, one series per backend x device x machine (mean over seeds for accuracy,
  median for timings, a bar from the lowest to the highest), each point a link to the run's page and
  its tooltip naming the run, the commit and the value;
- the runs the nightly gate flagged (their ``comparison.json`` holds a regression) ringed in red.

Run pages are the runs' own ``report.html`` where the reports folder has one, else a short page made
here from the store (identity, cells, environment). Like every renderer this reads stored results only.
"""

from __future__ import annotations

import html
import json
import math
import shutil
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness.compare import baselines
from harness.compare.results import RunResults, Side
from harness.environment import commit_text
from harness.paths import atomic_write
from harness.render import html as html_report
from harness.render.tables import format_cell
from harness.store import ResultsStore
from harness.thresholds import is_timing, unit

METRICS = ("test_accuracy", "train_seconds", "seconds_to_target")
#: Where a nightly run's comparison with its baseline is kept (written by ``harness nightly``).
COMPARISON = "comparison.json"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
WIDTH, HEIGHT = 900, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 36

EXTRA_STYLE = """
svg.graph { background: #fff; border: 1px solid #eee; } svg text { font-size: 11px; fill: #555; }
svg .axis { stroke: #999; } svg .grid { stroke: #eee; } svg polyline { fill: none; stroke-width: 1.5; }
svg .bar { stroke-width: 1; opacity: .6; } svg circle.flag { fill: none; stroke: #d00; stroke-width: 2; }
.legend label { margin-right: 1.2em; font-size: .85em; white-space: nowrap; }
.legend .swatch { display: inline-block; width: .9em; height: .9em; margin: 0 .3em; vertical-align: -.1em; }
"""
SCRIPT = """
document.querySelectorAll('.legend input').forEach(function (box) {
  box.addEventListener('change', function () {
    var graph = document.getElementById(box.dataset.graph);
    graph.querySelectorAll('[data-s="' + box.dataset.s + '"]').forEach(function (g) {
      g.style.display = box.checked ? '' : 'none';
    });
  });
});
"""


def machine_name(environment: dict[str, Any]) -> str:
    """What a run was measured on: ``$HARNESS_MACHINE`` where it was set (recorded as ``machine``),
    else CPU model, core count and GPU. Host names are left out on purpose: a CI runner gets a new one
    each night, and each night would otherwise be a machine of its own."""
    if environment.get("machine"):
        return str(environment["machine"])
    name = f"{environment.get('cpu') or 'unknown CPU'} x{environment.get('cpu_cores') or '?'}"
    return name + (f" + {environment['gpu']}" if environment.get("gpu") else "")


@dataclass(frozen=True)
class Point:
    """One run's value in a series, and where its page is."""

    when: float  # Unix time of the run's creation
    value: float
    low: float
    high: float
    href: str
    label: str
    flagged: bool = False


@dataclass
class Graph:
    """A graph: its title, y-axis label and series (name -> points)."""

    ident: str
    title: str
    y_label: str
    series: dict[str, list[Point]] = field(default_factory=dict)


def timestamp(created: str) -> float:
    moment = datetime.fromisoformat(created)
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def run_href(suite: str, run_id: str) -> str:
    return f"runs/{quote(suite)}/{quote(run_id)}.html"


def flagged_by_gate(reports: Path, results: RunResults) -> bool:
    """Whether the nightly gate found a regression in this run (its ``comparison.json`` says so)."""
    path = Path(reports) / results.suite / results.run_id / COMPARISON
    try:
        return json.loads(path.read_text()).get("regressions", 0) > 0
    except (OSError, ValueError, AttributeError):
        return False


def point_label(results: RunResults, text: str) -> str:
    commit = commit_text(results.environment, missing="no commit")
    return f"{results.run_id} · {results.created} · {commit} · {machine_name(results.environment)}: {text}"


def suite_graphs(suite: str, runs: list[RunResults], flagged: set[str]) -> list[Graph]:
    """The calibration graph, then one graph per model x metric with data."""
    calibration = Graph(f"{suite}-calibration", "Calibration workload per run, by machine", "calibration (s)")
    graphs: dict[tuple[str, str], Graph] = {}
    for results in runs:
        machine = machine_name(results.environment)
        href, when, flag = run_href(suite, results.run_id), timestamp(results.created), results.run_id in flagged
        seconds = results.calibration_seconds
        if seconds is not None:
            samples = [float(v) for v in results.calibration.get("samples") or []] or [seconds]
            calibration.series.setdefault(machine, []).append(
                Point(when, seconds, min(samples), max(samples), href, point_label(results, f"{seconds:.4g} s"), flag))
        for row, cells in results.rows().items():
            model = cells[0].model
            series = f"{row[len(model) + 3:]} @ {machine}"
            for metric in METRICS:
                values = Side(tuple(cells)).sample(metric)
                if not values:
                    continue
                centre = statistics.median(values) if is_timing(metric) else statistics.fmean(values)
                metric_unit = unit(metric)
                graph = graphs.setdefault((model, metric), Graph(
                    f"{suite}-{len(graphs)}", f"{model}: {metric}",
                    f"{metric} ({metric_unit})" if metric_unit else metric))
                graph.series.setdefault(series, []).append(
                    Point(when, centre, min(values), max(values), href,
                          point_label(results, f"{centre:.4g} {metric_unit}".rstrip()), flag))
    ordered = sorted(graphs.items(), key=lambda item: (item[0][0], METRICS.index(item[0][1])))
    return ([calibration] if calibration.series else []) + [graph for _, graph in ordered]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``low..high``."""
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 2.5, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def svg(graph: Graph) -> str:
    """The graph as inline SVG: axes, grid, one line per series, points linked to their run pages."""
    points = [p for series in graph.series.values() for p in series]
    x_low, x_high = min(p.when for p in points), max(p.when for p in points)
    if x_high - x_low < 60:
        x_low, x_high = x_low - 43200, x_high + 43200
    y_low, y_high = min(p.low for p in points), max(p.high for p in points)
    pad = (y_high - y_low) * 0.08 or abs(y_high) * 0.05 or 1.0
    y_low, y_high = y_low - pad, y_high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(when: float) -> float:
        return LEFT + (when - x_low) / (x_high - x_low) * plot_w

    def y(value: float) -> float:
        return TOP + (y_high - value) / (y_high - y_low) * plot_h

    out = [f'<svg class="graph" id="{graph.ident}" width="{WIDTH}" '
           f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{esc(graph.title)}">']
    for tick in nice_ticks(y_low, y_high):
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
                   f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.4g}</text>')
    span_days = (x_high - x_low) / 86400
    form = "%Y-%m-%d" if span_days > 3 else "%m-%d %H:%M"
    for i in range(5):
        when = x_low + i * (x_high - x_low) / 4
        text = datetime.fromtimestamp(when, timezone.utc).strftime(form)
        out.append(f'<text x="{x(when):.1f}" y="{HEIGHT - 12}" text-anchor="middle">{text}</text>')
    out.append(f'<path class="axis" d="M{LEFT} {TOP}V{HEIGHT - BOTTOM}H{WIDTH - RIGHT}"/>'
               f'<text x="12" y="{TOP + plot_h / 2:.0f}" transform="rotate(-90 12 {TOP + plot_h / 2:.0f})" '
               f'text-anchor="middle">{esc(graph.y_label)}</text>')
    for index, (name, series) in enumerate(graph.series.items()):
        colour = PALETTE[index % len(PALETTE)]
        series = sorted(series, key=lambda p: p.when)
        out.append(f'<g data-s="{index}" stroke="{colour}" fill="{colour}">')
        out.append('<polyline points="' + " ".join(f"{x(p.when):.1f},{y(p.value):.1f}" for p in series) + '"/>')
        bars = "".join(f"M{x(p.when):.1f} {y(p.low):.1f}V{y(p.high):.1f}" for p in series if p.high > p.low)
        if bars:
            out.append(f'<path class="bar" d="{bars}"/>')
        for p in series:
            ring = f'<circle class="flag" cx="{x(p.when):.1f}" cy="{y(p.value):.1f}" r="7"/>' if p.flagged else ""
            flag_text = " · flagged by the nightly gate" if p.flagged else ""
            out.append(f'<a href="{esc(p.href)}">{ring}<circle cx="{x(p.when):.1f}" cy="{y(p.value):.1f}" r="3.5">'
                       f'<title>{esc(name)} · {esc(p.label)}{flag_text}</title></circle></a>')
        out.append("</g>")
    out.append("</svg>")
    legend = "".join(f'<label><input type="checkbox" checked data-graph="{graph.ident}" data-s="{i}">'
                     f'<span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>{esc(name)}</label>'
                     for i, name in enumerate(graph.series))
    return "".join(out) + f'<div class="legend">{legend}</div>'


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: list[str], script: bool = False) -> str:
    text = html_report.page(title, body).replace("</style>", EXTRA_STYLE + "</style>", 1)
    return text.replace("</body>", f"<script>{SCRIPT}</script>\n</body>", 1) if script else text


def suite_page(suite: str, runs: list[RunResults], flagged: set[str]) -> str:
    machines = sorted({machine_name(r.environment) for r in runs})
    body = [f'<p><a href="index.html">All suites</a></p><h1>{esc(suite)}</h1>',
            f"<p>{len(runs)} run(s) from {esc(runs[0].created)} to {esc(runs[-1].created)} on "
            f"{len(machines)} machine(s): {esc(', '.join(machines))}. Each point links to its run's page; "
            "red rings mark runs the nightly gate flagged. Untick a legend entry to hide its series.</p>"]
    for graph in suite_graphs(suite, runs, flagged):
        note = (' <span class="note">(a machine whose line moves got slower or faster itself: timings that '
                'move with it are the machine, not the code)</span>') if graph.ident.endswith("calibration") else ""
        body += [f"<h2>{esc(graph.title)}</h2>{note}", svg(graph)]
    return page(f"{suite}: history", body, script=True)


def index_page(summaries: list[tuple[str, list[RunResults]]]) -> str:
    rows = []
    for suite, runs in summaries:
        link = html_report.Raw(f'<a href="{esc(quote(suite))}.html">{esc(suite)}</a>')
        machines = len({machine_name(r.environment) for r in runs})
        rows.append([link, len(runs), machines, runs[0].created, runs[-1].created])
    table = html_report.html_table(["Suite", "Runs", "Machines", "First run (UTC)", "Last run (UTC)"], rows,
                                   numeric={1, 2})
    every = [r for _, runs in summaries for r in runs]
    machines: dict[str, list[RunResults]] = {}
    for results in every:
        machines.setdefault(machine_name(results.environment), []).append(results)
    machine_rows = [[name, len(runs), runs[-1].environment.get("cpu_cores", "–"), runs[-1].calibration_text()]
                    for name, runs in sorted(machines.items())]
    return page("harness history", [
        "<h1>harness history</h1>",
        f"<p>{len(every)} stored run(s) of {len(summaries)} suite(s).</p>", table,
        "<h2>Machines</h2>",
        html_report.html_table(["Machine", "Runs", "Cores", "Latest calibration"], machine_rows, numeric={1, 2}),
    ])


def number_text(value: Any) -> str:
    return format_cell(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def run_page(store: ResultsStore, reports: Path, results: RunResults) -> str:
    """The run's own page where the reports folder has one, else a short one from the store."""
    own = Path(reports) / results.suite / results.run_id / html_report.PAGE
    if own.is_file():
        return own.read_text()
    run, cells = store.run(results.run_id), store.cells(results.run_id)
    columns = ["model", "backend", "device", "seed", "status", *METRICS]
    rows = [[s.cell.model, s.cell.backend, s.record.get("device", s.cell.device), s.cell.seed, s.result.status,
             *(number_text(s.record.get(m)) for m in METRICS)] for s in cells]
    body = html_report.header_section(run) + html_report.failures_section(cells)
    body += ["<h2>Cells</h2>", html_report.html_table(columns, rows, numeric={3, 5, 6, 7})]
    body += html_report.environment_section(run.environment)
    return html_report.page(f"{run.suite} {run.run_id}", body)


@dataclass(frozen=True)
class SiteSummary:
    """What a publish wrote."""

    suites: int
    runs: int
    files: int
    bytes: int


def publish(reports: Path, out: Path, suites: list[str] | None = None) -> SiteSummary:
    """Write the site for the store in ``reports`` into ``out`` (replacing an earlier site there)."""
    reports, out = Path(reports), Path(out)
    if (out / "runs").is_dir():
        shutil.rmtree(out / "runs")  # runs may have been removed from the store since
    out.mkdir(parents=True, exist_ok=True)
    summaries: list[tuple[str, list[RunResults]]] = []
    with ResultsStore(reports / "results.db") as store:
        names = suites or sorted({run.suite for run in store.runs()})
        for suite in names:
            runs = baselines.runs_of(store, suite)
            if not runs:
                continue
            flagged = {r.run_id for r in runs if flagged_by_gate(reports, r)}
            atomic_write(out / f"{suite}.html", suite_page(suite, runs, flagged))
            for results in runs:
                path = out / run_href(suite, results.run_id)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(run_page(store, reports, results))
            summaries.append((suite, runs))
    atomic_write(out / "index.html", index_page(summaries))
    files = [path for path in out.rglob("*") if path.is_file()]
    return SiteSummary(len(summaries), sum(len(runs) for _, runs in summaries), len(files),
                       sum(path.stat().st_size for path in files))
