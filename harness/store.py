"""The results store: an embedded SQLite file (``reports/results.db``) plus a folder per run.

Each finished cell is committed at once, so a crash or a kill never loses the cells already done;
after each cell the run folder's ``results.csv`` and ``results.json`` are rewritten from the store
(temporary file, then rename), so they are never half-written either. Records are versioned: a
store written by a newer harness is refused rather than misread, an older one is migrated.

A run being written is owned: its writer holds a lease (pid, host, heartbeat) in the store, taken in
the same transaction that picks the run, so two processes never write one run. A lease whose owner
died (its pid is gone on this host, or its heartbeat is older than :data:`LEASE_TIMEOUT`) no longer
counts, and the run can be resumed.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from harness.cells import Cell, CellResult, StoredCell, nan_free
from harness.errors import UserError, echo
from harness.paths import atomic_write

#: 1: runs and cells. 2: leases (who is writing a run).
SCHEMA_VERSION = 2
#: A lease whose heartbeat is older than this (seconds) is dead whoever holds it: the owner is gone,
#: or on another host (a container, a cluster node) where its pid cannot be checked.
LEASE_TIMEOUT = 120.0
#: How often a writer refreshes its lease between cells (each committed cell refreshes it too).
HEARTBEAT_INTERVAL = 15.0

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
CREATE TABLE IF NOT EXISTS leases (
    run_id TEXT PRIMARY KEY REFERENCES runs(run_id),
    token TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    acquired TEXT NOT NULL,
    heartbeat REAL NOT NULL
);
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
    status: str  # running | complete | partial (only some cells asked for) | failed
    config: dict[str, Any]
    environment: dict[str, Any]

    def folder(self, reports: Path) -> Path:
        return reports / self.suite / self.run_id


@dataclass(frozen=True)
class Lease:
    """Who is writing a run: the writer's process and host, and when it last said it was alive."""

    run_id: str
    token: str
    pid: int
    host: str
    heartbeat: float  # Unix time

    def live(self, timeout: float = LEASE_TIMEOUT) -> bool:
        """Whether the owner may still be writing: a fresh heartbeat, and on this host a running pid."""
        if time.time() - self.heartbeat > timeout:
            return False
        return self.host != socket.gethostname() or _pid_running(self.pid)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, last heartbeat {time.time() - self.heartbeat:.0f} s ago"


def _pid_running(pid: int) -> bool:
    """Whether ``pid`` is a live process here (a zombie, killed but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class RunBusy(UserError):
    """The run asked for is being written by a live process."""


class ResultsStore:
    """Runs and their cells in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        #: The leases this store's process holds: run id -> token (checked on every write to the run).
        self._held: dict[str, str] = {}
        #: Per held lease, the event that stops its heartbeat thread, and the thread.
        self._beating: dict[str, tuple[threading.Event, threading.Thread]] = {}
        try:
            # Autocommit mode: every write goes through _transaction, which takes the write lock up front.
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            version = self._version()
            if version != SCHEMA_VERSION:  # a store that is up to date is only read here (it may be read-only)
                with self._transaction():
                    self._migrate(self._version())
        except sqlite3.DatabaseError as error:
            raise UserError(f"results store {self.path}: {store_problem(error)}") from None

    def _version(self) -> int | None:
        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
            return None
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return None if row is None else int(row["value"])

    def _migrate(self, version: int | None) -> None:
        """Bring the store to SCHEMA_VERSION (inside the write transaction, so one process does it)."""
        if version is not None and version > SCHEMA_VERSION:
            raise UserError(newer_store_message(self.path, version))
        for statement in _SCHEMA.split(";"):
            # CREATE ... IF NOT EXISTS: a new store gets every table; schema 1 -> 2 gets the leases
            # table. Runs from before it have no lease, so they count as not owned (resumable), as they were.
            if statement.strip():
                self._db.execute(statement)
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction, holding SQLite's write lock from the start (no lost updates)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Release the leases this store holds (their runs become resumable at once), then close."""
        for run_id in list(self._held):
            self.release(run_id)
        self._db.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # runs
    def create_run(self, run: RunInfo) -> None:
        with self._transaction():
            self._insert_run(run)

    def _insert_run(self, run: RunInfo) -> None:
        self._db.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run.run_id, run.suite, run.profile, run.config_hash, run.created, run.finished, run.status,
             json.dumps(run.config), json.dumps(nan_free(run.environment))),
        )

    def update_run(self, run_id: str, *, status: str, environment: dict[str, Any] | None = None,
                   finished: str | None = None) -> None:
        """Set a run's status (and environment); ``finished`` defaults to now unless it is running."""
        with self._transaction():
            self._check_owner(run_id)
            self._db.execute("UPDATE runs SET status = ?, finished = ? WHERE run_id = ?",
                             (status, (finished or now()) if status != "running" else None, run_id))
            if environment is not None:
                self._db.execute("UPDATE runs SET environment = ? WHERE run_id = ?",
                                 (json.dumps(nan_free(environment)), run_id))

    def run(self, run_id: str) -> RunInfo:
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise UserError(f"no run {echo(run_id)} in {self.path}")
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

    # ownership
    def lease(self, run_id: str) -> Lease | None:
        """The lease on a run, live or not (None: nobody has claimed it since it was last released)."""
        row = self._db.execute("SELECT * FROM leases WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else Lease(row["run_id"], row["token"], row["pid"], row["host"], row["heartbeat"])

    def open_run(self, suite: str, config_hash: str, resume: str | None,
                 new_run: Callable[[], RunInfo]) -> tuple[RunInfo, bool, list[Lease]]:
        """Claim the run to write into, in one transaction: the one asked for (``resume`` = a run id),
        else (``resume`` None) the newest unfinished run of these settings that nobody live is writing,
        else a new one from ``new_run()``.

        Returns the run, whether it is resumed, and the live leases passed over (to tell the user).
        A run id whose owner is alive raises :class:`RunBusy`. The lease is this store's until
        :meth:`release` or :meth:`close`; a background thread refreshes it every
        :data:`HEARTBEAT_INTERVAL` seconds meanwhile (a long cell commits nothing for minutes).
        """
        with self._transaction():
            self._forget_the_dead()
            if resume not in (None, "no"):
                run = self.run(resume)
                lease = self.lease(run.run_id)
                if lease is not None and lease.live() and lease.token not in self._held.values():
                    raise RunBusy(f"resume={run.run_id}: that run is being written by {lease.describe()}; wait for "
                                  "it to finish (or stop it), or start a new run with resume=no")
                self._claim(run.run_id)
                return run, True, []
            passed: list[Lease] = []
            if resume is None:
                unfinished = [r for r in self.runs(suite) if r.config_hash == config_hash and r.status != "complete"]
                for run in reversed(unfinished):
                    lease = self.lease(run.run_id)
                    if lease is not None and lease.live():
                        passed.append(lease)
                        continue
                    self._claim(run.run_id)
                    return run, True, passed
            run = new_run()
            while self._db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run.run_id,)).fetchone():
                run = dataclasses.replace(run, run_id=run.run_id + "x")
            self._insert_run(run)
            self._claim(run.run_id)
            return run, False, passed

    def _forget_the_dead(self) -> None:
        """Drop leases whose owners died, and the temporary files those owners were writing when killed."""
        for row in self._db.execute("SELECT leases.*, runs.suite FROM leases JOIN runs USING (run_id)").fetchall():
            lease = Lease(row["run_id"], row["token"], row["pid"], row["host"], row["heartbeat"])
            if not lease.live():
                self._db.execute("DELETE FROM leases WHERE run_id = ?", (lease.run_id,))
                for stale in (self.path.parent / row["suite"] / lease.run_id).glob(".results.*.tmp"):
                    stale.unlink(missing_ok=True)

    def _claim(self, run_id: str) -> None:
        token = uuid.uuid4().hex
        self._db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?)",
                         (run_id, token, os.getpid(), socket.gethostname(), now(), time.time()))
        self._held[run_id] = token
        if run_id not in self._beating:
            stop = threading.Event()
            thread = threading.Thread(target=self._beat, args=(run_id, token, stop), name=f"lease {run_id}",
                                      daemon=True)
            thread.start()
            self._beating[run_id] = stop, thread

    def _beat(self, run_id: str, token: str, stop: threading.Event) -> None:
        # Its own connection: an SQLite connection is not for two threads at once.
        db = sqlite3.connect(self.path, timeout=30)
        try:
            while not stop.wait(HEARTBEAT_INTERVAL):
                with db:
                    db.execute("UPDATE leases SET heartbeat = ? WHERE run_id = ? AND token = ?",
                               (time.time(), run_id, token))
        except sqlite3.Error:
            pass  # the store is unreachable: the next commit in the main thread says so
        finally:
            db.close()

    def _check_owner(self, run_id: str) -> None:
        """Inside a transaction: refuse to write a run whose lease this store held and has lost."""
        token = self._held.get(run_id)
        if token is None:
            return  # not a run this store claimed (tests, nightly's calibration update)
        lease = self.lease(run_id)
        if lease is None or lease.token != token:
            taken = f"it is now written by {lease.describe()}" if lease else "its lease was released"
            raise UserError(f"run {run_id}: this process lost its lease (it stalled for over {LEASE_TIMEOUT:.0f} s "
                            f"without a heartbeat) and {taken}; nothing more is written by this process")
        self._db.execute("UPDATE leases SET heartbeat = ? WHERE run_id = ?", (time.time(), run_id))

    def heartbeat(self, run_id: str) -> None:
        """Tell other processes this store's owner of ``run_id`` is alive (raises if the lease was lost)."""
        with self._transaction():
            self._check_owner(run_id)

    def forget_host(self, host: str) -> None:
        """Drop every lease held on ``host``: the caller knows all its processes have ended (a container
        that exited), so their runs are resumable now rather than after :data:`LEASE_TIMEOUT`."""
        with self._transaction():
            self._db.execute("DELETE FROM leases WHERE host = ?", (host,))

    def release(self, run_id: str) -> None:
        """Give up the lease on a run (it stays resumable when unfinished)."""
        stop, thread = self._beating.pop(run_id, (None, None))
        if stop is not None:
            stop.set()
            thread.join()
        token = self._held.pop(run_id, None)
        if token is not None:
            with self._transaction():
                self._db.execute("DELETE FROM leases WHERE run_id = ? AND token = ?", (run_id, token))

    # cells
    def save_cell(self, run_id: str, position: int, cell: Cell, result: CellResult) -> None:
        """Commit one finished cell (replacing a failed earlier attempt of the same cell)."""
        with self._transaction():
            self._check_owner(run_id)
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

    def settled_status(self, run_id: str, planned: Iterable[str]) -> str:
        """A run's status once its writer stops: ``failed`` if a cell failed, ``complete`` if every
        planned cell (all the suite's cells, not only those asked for) succeeded, else ``partial``."""
        statuses = {row["key"]: row["status"] for row in
                    self._db.execute("SELECT key, status FROM cells WHERE run_id = ?", (run_id,))}
        if any(status != "ok" for status in statuses.values()):
            return "failed"
        return "complete" if set(planned) <= set(statuses) else "partial"


def newer_store_message(path: Path, version: object) -> str:
    return (f"results store {path} was written by a newer harness (schema {version}, this one reads up to "
            f"{SCHEMA_VERSION}): upgrade harness or use another reports folder")


def store_problem(error: sqlite3.Error) -> str:
    """What an SQLite error opening the store means to the user, and what to do."""
    text = str(error)
    if "not a database" in text or "malformed" in text:
        return f"corrupt ({text}); move it aside (the run folders keep results.json) or use another reports folder"
    if "readonly" in text or "read-only" in text:
        return "read-only; make it writable or use another reports folder (reports=DIR)"
    if "unable to open" in text:
        return "cannot be opened; check its folder exists and is writable, or use another reports folder"
    return f"{text}; use another reports folder (reports=DIR)"


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
    for stale in folder.glob(".results.*.tmp"):
        # Left by a writer killed mid-write; only the lease holder writes here, so none is in use.
        if not stale.name.endswith(f".{os.getpid()}.tmp"):
            stale.unlink(missing_ok=True)


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
        raise UserError(f"results file {path} has schema version {echo(version)}; this harness reads 1..{SCHEMA_VERSION}")
    run = RunInfo(document["run_id"], document["suite"], document["profile"], document["config_hash"],
                  document["created"], document.get("finished"), document["status"], document["config"],
                  document["environment"])
    cells = [
        StoredCell(Cell(**item["cell"]), CellResult(item["status"], item["record"], item["artifacts"], item["error"]))
        for item in document["cells"]
    ]
    return run, cells


def check_reports(reports: Path, suite: str | None = None, resume: str | None = None) -> None:
    """Find whatever would stop a run writing into ``reports`` before any work starts; raises UserError.

    Nothing is created here: the folder may not exist yet, so the nearest folder that does must let
    it be made. An existing store must be a writable, sound SQLite file this harness can read, and a
    run asked for by id must be in it. ``suite`` names the suite's subfolder, which must be writable too.
    """
    reports = Path(reports)
    advice = "choose another folder with reports=DIR (or $HARNESS_REPORTS)"
    if reports.exists() and not reports.is_dir():
        raise UserError(f"reports={reports} is a file, not a folder; {advice}")
    existing = reports
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"reports={reports} cannot be created: {existing} is a file; {advice}")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "is not writable" if existing == reports else f"cannot be created: {existing} is not writable"
        raise UserError(f"reports={reports} {where}; {advice}")
    folder = reports / suite if suite else None
    if folder is not None and folder.exists() and not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        raise UserError(f"reports={reports}: {folder} is not a writable folder; fix it or {advice}")
    database = reports / "results.db"
    if not database.exists():
        if resume not in (None, "no"):
            raise UserError(f"resume={echo(resume)}: no results store in {reports} yet, so no run to resume; "
                            "leave resume out, or resume=no")
        return
    if not database.is_file() or not os.access(database, os.R_OK | os.W_OK):
        raise UserError(f"results store {database}: {'not a file' if not database.is_file() else 'read-only'}; "
                        f"make it a writable file or {advice}")
    try:
        # Read-only, so a store with a problem is left exactly as it was.
        db = sqlite3.connect(database.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            verdict = [row[0] for row in db.execute("PRAGMA quick_check")]
            if verdict != ["ok"]:
                raise sqlite3.DatabaseError(f"database disk image is malformed: {'; '.join(verdict[:2])}")
            has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
            version = has_meta and db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if version and int(version[0]) > SCHEMA_VERSION:
                raise UserError(newer_store_message(database, version[0]))
            if resume not in (None, "no"):
                found = has_meta and db.execute("SELECT 1 FROM runs WHERE run_id = ?", (resume,)).fetchone()
                if not found:
                    raise UserError(f"resume={echo(resume)}: no such run in {database}; give the id of a run "
                                    "(a folder name under the suite's reports folder), or resume=no")
        finally:
            db.close()
    except sqlite3.DatabaseError as error:
        raise UserError(f"results store {database}: {store_problem(error)}") from None
