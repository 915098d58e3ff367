"""The results store: an embedded SQLite file (``reports/results.db``) plus a folder per run.

Each finished cell is committed at once, so a crash or a kill never loses the cells already done;
after each cell the run folder's ``results.csv`` and ``results.json`` are rewritten from the store
(temporary file, then rename), so they are never half-written either. Records are versioned: a
store written by a newer harness is refused rather than misread.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from harness.cells import Cell, CellResult, StoredCell, nan_free
from harness.errors import UserError
from harness.paths import atomic_write

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    suite TEXT NOT NULL,
    profile TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    created TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    environment TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cells (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    key TEXT NOT NULL,
    position INTEGER NOT NULL,
    cell TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL,
    artifacts TEXT NOT NULL,
    error TEXT NOT NULL,
    finished TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX IF NOT EXISTS runs_by_suite ON runs (suite, created);
"""


def now() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class RunInfo:
    """One run of a suite: its settings, environment and state."""

    run_id: str
    suite: str
    profile: str
    config_hash: str
    created: str
    finished: str | None
    status: str  # running | complete | failed
    config: dict[str, Any]
    environment: dict[str, Any]

    def folder(self, reports: Path) -> Path:
        return reports / self.suite / self.run_id


class ResultsStore:
    """Runs and their cells in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.row_factory = sqlite3.Row
        with self._db:
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row["value"]) > SCHEMA_VERSION:
                raise UserError(
                    f"results store {self.path} was written by a newer harness (schema {row['value']}, "
                    f"this one reads up to {SCHEMA_VERSION}): upgrade harness or use another reports folder"
                )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # runs
    def create_run(self, run: RunInfo) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.run_id, run.suite, run.profile, run.config_hash, run.created, run.finished, run.status,
                 json.dumps(run.config), json.dumps(nan_free(run.environment))),
            )

    def update_run(self, run_id: str, *, status: str, environment: dict[str, Any] | None = None) -> None:
        with self._db:
            self._db.execute("UPDATE runs SET status = ?, finished = ? WHERE run_id = ?",
                             (status, now() if status != "running" else None, run_id))
            if environment is not None:
                self._db.execute("UPDATE runs SET environment = ? WHERE run_id = ?",
                                 (json.dumps(nan_free(environment)), run_id))

    def run(self, run_id: str) -> RunInfo:
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise UserError(f"no run {run_id!r} in {self.path}")
        return _run_info(row)

    def runs(self, suite: str | None = None) -> list[RunInfo]:
        """Runs, oldest first (optionally of one suite)."""
        query, args = "SELECT * FROM runs", ()
        if suite is not None:
            query, args = query + " WHERE suite = ?", (suite,)
        return [_run_info(row) for row in self._db.execute(query + " ORDER BY created, run_id", args)]

    def latest_run(self, suite: str, config_hash: str | None = None, unfinished: bool = False) -> RunInfo | None:
        """The newest run of ``suite``, optionally with these settings and not complete."""
        candidates = [r for r in self.runs(suite) if config_hash in (None, r.config_hash)]
        if unfinished:
            candidates = [r for r in candidates if r.status != "complete"]
        return candidates[-1] if candidates else None

    # cells
    def save_cell(self, run_id: str, position: int, cell: Cell, result: CellResult) -> None:
        """Commit one finished cell (replacing a failed earlier attempt of the same cell)."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, cell.key, position, cell.to_json(), result.status, json.dumps(nan_free(result.record)),
                 json.dumps(nan_free(result.artifacts)), result.error, now()),
            )

    def cells(self, run_id: str) -> list[StoredCell]:
        rows = self._db.execute("SELECT * FROM cells WHERE run_id = ? ORDER BY position", (run_id,))
        return [
            StoredCell(
                Cell.from_json(row["cell"]),
                CellResult(row["status"], json.loads(row["record"]), json.loads(row["artifacts"]), row["error"]),
            )
            for row in rows
        ]

    def finished_keys(self, run_id: str) -> set[str]:
        """Keys of the cells of a run that succeeded (failed ones are run again on resume)."""
        rows = self._db.execute("SELECT key FROM cells WHERE run_id = ? AND status = 'ok'", (run_id,))
        return {row["key"] for row in rows}


def _run_info(row: sqlite3.Row) -> RunInfo:
    return RunInfo(row["run_id"], row["suite"], row["profile"], row["config_hash"], row["created"], row["finished"],
                   row["status"], json.loads(row["config"]), json.loads(row["environment"]))


def write_run_files(folder: Path, run: RunInfo, cells: list[StoredCell], columns: Iterable[str]) -> None:
    """Write ``results.csv`` and ``results.json`` for a run, each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    records = [nan_free(stored.record) for stored in cells]
    leading = [c for c in columns]
    rest = sorted({key for record in records for key in record} - set(leading))
    header = leading + rest
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({key: "" if record.get(key) is None else record.get(key) for key in header})
    atomic_write(folder / "results.csv", buffer.getvalue())
    document = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "suite": run.suite,
        "profile": run.profile,
        "config_hash": run.config_hash,
        "created": run.created,
        "finished": run.finished,
        "status": run.status,
        "environment": run.environment,
        "config": run.config,
        "cells": [
            {"key": s.cell.key, "cell": json.loads(s.cell.to_json()), "status": s.result.status,
             "error": s.result.error, "record": s.result.record, "artifacts": s.result.artifacts}
            for s in cells
        ],
    }
    atomic_write(folder / "results.json", json.dumps(nan_free(document), indent=1))


def read_run_file(path: Path) -> tuple[RunInfo, list[StoredCell]]:
    """A run and its cells from a ``results.json`` (or the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no results file at {path}") from None
    except json.JSONDecodeError as error:
        raise UserError(f"results file {path} is not valid JSON: {error}") from None
    version = document.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise UserError(f"results file {path} has schema version {version!r}; this harness reads 1..{SCHEMA_VERSION}")
    run = RunInfo(document["run_id"], document["suite"], document["profile"], document["config_hash"],
                  document["created"], document.get("finished"), document["status"], document["config"],
                  document["environment"])
    cells = [
        StoredCell(Cell(**item["cell"]), CellResult(item["status"], item["record"], item["artifacts"], item["error"]))
        for item in document["cells"]
    ]
    return run, cells
