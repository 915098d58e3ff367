"""Where the runs a comparison reads come from: the results store, a results.json, or a baseline file.

A baseline file (``reports/baselines/<device-kind>-<profile>.json``, committed) holds, per suite, the
run it was taken from reduced to what a comparison needs: identity, environment (calibration
included), the suite's regression settings, and each cell's record and repeated timings, without the
bulky artifacts. An entry may pool several runs of the same code (each cell says which run measured
it): their spread is the run-to-run noise a single new run is judged against. It is versioned like
the results store: a file from a newer harness is refused rather than misread, and older versions
are read as they were written (version 1: one run per suite). A baseline file is read through the
schema of :mod:`harness.compare.baseline_file`, a results.json through the store's reader
(:func:`harness.store.read_run_file`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.cells import StoredCell, nan_free, units
from harness.compare.baseline_file import BASELINE_FORMAT, BASELINE_SCHEMA_VERSION, read_baseline
from harness.compare.results import CellSummary, RunResults, Side, pool
from harness.compare.stats import SampleStats
from harness.errors import UserError
from harness.paths import atomic_write
from harness.store import ResultsStore, RunInfo, now, read_run_file


def summarize(run: RunInfo, cells: list[StoredCell]) -> RunResults:
    """A stored run (from the store or its results.json) as a comparison reads it: a row per unit of work
    (:func:`harness.cells.units`)."""
    summaries = [
        CellSummary.from_parts({"model": s.cell.model, "backend": s.cell.backend,
                                "device": s.record.get("device", s.cell.device), "seed": s.cell.seed,
                                "params": s.cell.params},
                               s.result.status, s.result.error, s.result.record, s.result.artifacts)
        for s in units(cells)
    ]
    return RunResults(run.suite, run.run_id, run.profile, run.config_hash, run.created, run.environment,
                      dict(run.config.get("regression") or {}), summaries)


def from_store(store: ResultsStore, run_id: str) -> RunResults:
    """A run of the store by id."""
    return summarize(store.run(run_id), store.cells(run_id))


def latest(store: ResultsStore, suite: str, profile: str | None = None) -> RunResults:
    """The newest finished run of ``suite`` (of ``profile`` when given); UserError when there is none."""
    runs = [r for r in store.runs(suite) if r.status != "running" and profile in (None, r.profile)]
    if not runs:
        which = f" with profile {profile!r}" if profile else ""
        raise UserError(f"no finished run of suite {suite!r}{which} in {store.path}: run it first")
    return from_store(store, runs[-1].run_id)


def device_kind(results: RunResults) -> str:
    """'cuda' when the run's cells ran on a GPU, else 'cpu' (the first part of a baseline file name)."""
    return "cuda" if any(cell.device.startswith("cuda") for cell in results.cells) else "cpu"


def baseline_path(reports: Path, kind: str, profile: str) -> Path:
    return Path(reports) / "baselines" / f"{kind}-{profile}.json"


def is_baseline_file(path: Path) -> bool:
    """Whether ``path`` claims to be a baseline file: a ``"format"`` key near its start (baseline files
    are written with sorted keys; a results.json has none), so a damaged one is read, and reported, as
    a baseline rather than as a results file."""
    try:
        with open(path, errors="replace") as handle:
            head = handle.read(200)
    except OSError:
        return False
    return '"format":' in head


def write_baseline(path: Path, results: RunResults, profile: str) -> dict[str, Any]:
    """Put ``results`` into the baseline file at ``path`` as its suite's entry (other suites kept)."""
    path = Path(path)
    document: dict[str, Any] = {"format": BASELINE_FORMAT, "schema_version": BASELINE_SCHEMA_VERSION}
    if path.exists():
        read_baseline(path)  # refuses a newer, foreign or malformed file before it is overwritten
        document = json.loads(path.read_text())
    document.update({"format": BASELINE_FORMAT, "schema_version": BASELINE_SCHEMA_VERSION,
                     "device_kind": device_kind(results),
                     "profile": profile, "updated": now()})
    suites = dict(document.get("suites", {}))
    suites[results.suite] = _results_to_json(results)
    document["suites"] = dict(sorted(suites.items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    # Sorted keys and one cell per block keep the committed file's diffs readable.
    atomic_write(path, json.dumps(nan_free(document), indent=1, sort_keys=True) + "\n")
    return document


def _results_to_json(results: RunResults) -> dict[str, Any]:
    pooled = {"runs": list(results.runs)} if results.runs else {}
    return {
        **pooled,
        "run_id": results.run_id,
        "suite": results.suite,
        "profile": results.profile,
        "config_hash": results.config_hash,
        "created": results.created,
        "environment": results.environment,
        "regression": results.regression,
        "cells": [cell.as_dict() for cell in results.cells],
    }


def pooled(runs: list[RunResults]) -> RunResults:
    """Runs of one suite and configuration as one baseline (:func:`harness.compare.results.pool`); a
    single run as it is. A UserError when they are not of one suite and configuration."""
    suites = {results.suite for results in runs}
    if len(suites) > 1:
        raise UserError(f"runs {', '.join(r.run_id for r in runs)} are of different suites "
                        f"({', '.join(sorted(suites))}): a baseline pools runs of one suite")
    settings = {results.config_hash for results in runs}
    if len(settings) > 1:
        raise UserError(f"runs {', '.join(r.run_id for r in runs)} ran different settings (config "
                        f"{', '.join(sorted(settings))}): a baseline pools runs of one configuration")
    return runs[0] if len(runs) == 1 else pool(runs)


def resolve(source: str, reports: Path) -> list[RunResults]:
    """What ``source`` names: a baseline file (every suite in it), a results.json or run folder, a run
    id of the store in ``reports``, or several runs of one suite, comma-separated, pooled."""
    path = Path(source)
    if "," in source and not path.exists():
        return [pooled([results for part in source.split(",") if part.strip()
                        for results in resolve(part.strip(), reports)])]
    if path.is_file() and is_baseline_file(path):
        return list(read_baseline(path).values())
    if path.is_file() or (path.is_dir() and (path / "results.json").is_file()):
        return [summarize(*read_run_file(path))]
    database = Path(reports) / "results.db"
    if not database.exists():
        raise UserError(f"{source!r} is neither a file nor a run folder, and there is no results store at {database}")
    with ResultsStore(database) as store:
        known = {run.run_id for run in store.runs()}
        if source not in known:
            raise UserError(f"{source!r} is not a baseline file, a results.json, a run folder or a run id in {database}")
        return [from_store(store, source)]


def runs_of(store: ResultsStore, suite: str, profile: str | None = None) -> list[RunResults]:
    """Every finished run of ``suite`` (of ``profile`` when given), oldest first: a suite's history."""
    return [from_store(store, run.run_id) for run in store.runs(suite)
            if run.status != "running" and profile in (None, run.profile)]


def metric_history(runs: list[RunResults], metric: str, model: str | None = None
                   ) -> dict[str, list[SampleStats | None]]:
    """Per comparison row, the statistics of ``metric`` in each run (None where the run lacks it)."""
    rows: dict[str, list[SampleStats | None]] = {}
    for index, results in enumerate(runs):
        for row, cells in results.rows().items():
            if model is not None and cells[0].model != model:
                continue
            values = Side(tuple(cells)).sample(metric)
            rows.setdefault(row, [None] * len(runs))[index] = SampleStats.of(values) if values else None
    return rows
