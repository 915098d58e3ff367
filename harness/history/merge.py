"""Bring the runs of other stores into this one: ``harness merge``'s logic.

A source is a ``results.db``, or a reports folder (its ``results.db``, or without one the
``results.json`` of each run folder). Runs are matched by id, so merging is idempotent: a run already
here with the same content is left alone, and one here with different content is a conflict that
refuses the whole merge before anything is written (a run id names one measurement; two different
runs under one id would make every later comparison ambiguous). A run still being written, or left
unfinished by a writer that died, is not merged: it may change yet (resume it where it lives first).

The new runs go in as they are, cells included, in one transaction; then their run folders (pages,
figures, ``comparison.json``) are copied next to them, so the site's links to run pages keep working.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.cells import StoredCell, nan_free
from harness.errors import UserError, echo
from harness.store import ResultsStore, RunInfo, now, read_run_file

DATABASE = "results.db"


@dataclass(frozen=True)
class SourceRun:
    """A run offered by a source, with the folder holding its files there (None: the source has none)."""

    run: RunInfo
    cells: list[StoredCell]
    folder: Path | None
    origin: str


@dataclass
class MergeReport:
    """What a merge did: runs added, runs already here unchanged, runs passed over and why."""

    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.added)} run(s) added, {len(self.unchanged)} already here unchanged, "
                f"{len(self.skipped)} not merged")


def content(run: RunInfo, cells: list[StoredCell]) -> str:
    """What identifies a run's results, as canonical JSON: its row and every cell as stored. The time
    a cell was committed is left out (a ``results.json`` does not keep it)."""
    document = {
        "run": asdict(run),
        "cells": [{"key": s.cell.key, "cell": json.loads(s.cell.to_json()), "status": s.result.status,
                   "record": s.result.record, "artifacts": s.result.artifacts, "error": s.result.error}
                  for s in cells],
    }
    return json.dumps(nan_free(json.loads(json.dumps(document, default=str))), sort_keys=True)


def read_source(source: Path) -> tuple[list[SourceRun], list[str]]:
    """The finished runs a source offers, and a line for each run it holds that is not merged."""
    source = Path(source)
    if source.is_dir() and not (source / DATABASE).is_file():
        return read_run_folders(source)
    database = source / DATABASE if source.is_dir() else source
    if not database.is_file():
        raise UserError(f"merge source {echo(str(source))}: no such store; give a results.db or a reports folder")
    reports = database.parent
    offered, skipped = [], []
    with ResultsStore(database) as store:
        for run in store.runs():
            if run.status == "running":
                lease = store.lease(run.run_id)
                writer = f"being written by {lease.describe()}" if lease and lease.live() else "unfinished"
                skipped.append(f"{source}: run {run.run_id} is {writer}; not merged")
                continue
            folder = run.folder(reports)
            offered.append(SourceRun(run, store.cells(run.run_id), folder if folder.is_dir() else None, str(source)))
    return offered, skipped


def read_run_folders(reports: Path) -> tuple[list[SourceRun], list[str]]:
    """Runs from the ``results.json`` of a reports folder without a store (``SUITE/RUN/results.json``)."""
    files = sorted(reports.glob("*/*/results.json"))
    if not files:
        raise UserError(f"merge source {reports}: neither a results.db nor run folders with results.json in it")
    offered, skipped = [], []
    for path in files:
        run, cells = read_run_file(path)
        if run.status == "running":
            skipped.append(f"{reports}: run {run.run_id} is unfinished; not merged")
            continue
        offered.append(SourceRun(run, cells, path.parent, str(reports)))
    return offered, skipped


def merge(target: Path, sources: list[Path]) -> MergeReport:
    """Merge ``sources`` into the reports folder ``target`` (see the module docstring); raises
    UserError on a conflict, with nothing written."""
    report = MergeReport()
    incoming: dict[str, SourceRun] = {}
    for source in sources:
        offered, skipped = read_source(source)
        report.skipped += skipped
        for item in offered:
            earlier = incoming.get(item.run.run_id)
            if earlier is not None and content(earlier.run, earlier.cells) != content(item.run, item.cells):
                raise UserError(conflict(item.run.run_id, earlier.origin, item.origin))
            incoming.setdefault(item.run.run_id, item)
    database = Path(target) / DATABASE
    with ResultsStore(database) as store:  # creates or migrates the target's schema
        here = {run.run_id for run in store.runs()}
        new = []
        for run_id, item in incoming.items():
            if run_id not in here:
                new.append(item)
            elif content(store.run(run_id), store.cells(run_id)) == content(item.run, item.cells):
                report.unchanged.append(run_id)
            else:
                raise UserError(conflict(run_id, item.origin, str(database)))
    insert_runs(database, [(item.run, item.cells) for item in new])
    for item in new:
        if item.folder is not None:
            copy_run_folder(item.folder, item.run.folder(Path(target)))
        report.added.append(item.run.run_id)
    return report


def conflict(run_id: str, one: str, other: str) -> str:
    return (f"run {run_id} differs between {one} and {other}: a run id names one measurement, so nothing was "
            "merged; remove one of the two copies (or merge the other sources without it)")


def insert_runs(database: Path, runs: list[tuple[RunInfo, list[StoredCell]]]) -> None:
    """Insert whole runs with their cells as they are, in one transaction (all or none). A run id
    that appeared meanwhile (another writer) fails the transaction rather than being overwritten."""
    if not runs:
        return
    db = sqlite3.connect(database, timeout=30, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            for run, cells in runs:
                db.execute("INSERT INTO runs (run_id, suite, profile, config_hash, created, finished, status, config, "
                           "environment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (run.run_id, run.suite, run.profile, run.config_hash, run.created, run.finished,
                            run.status, json.dumps(run.config), json.dumps(nan_free(run.environment))))
                for position, stored in enumerate(cells):
                    db.execute("INSERT INTO cells (run_id, key, position, cell, status, record, artifacts, error, "
                               "finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               (run.run_id, stored.cell.key, position, stored.cell.to_json(), stored.result.status,
                                json.dumps(nan_free(stored.record)), json.dumps(nan_free(stored.result.artifacts)),
                                stored.result.error, run.finished or now()))
        except BaseException as error:
            db.execute("ROLLBACK")
            if isinstance(error, sqlite3.IntegrityError):
                raise UserError(f"{database}: a run being merged was written there meanwhile ({error}); "
                                "nothing was merged, run the merge again") from None
            raise
        db.execute("COMMIT")
    finally:
        db.close()


def copy_run_folder(source: Path, destination: Path) -> None:
    """A run's files (pages, figures, results files), without temporary files a writer left."""
    if source.resolve() == destination.resolve():
        return
    shutil.copytree(source, destination, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*.tmp", "*.tmp.png"))
