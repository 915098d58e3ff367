"""The results store's database: an embedded SQLite file (``reports/results.db``) of runs and cells.

Each finished cell is committed at once, so a crash or a kill never loses the cells already done.
Records are versioned: a store written by a newer harness is refused rather than misread, an older
one is migrated. A run being written is owned by its writer's lease (:mod:`.leases`), taken in the
same transaction that picks the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from harness.cells import Cell, CellResult, StoredCell, nan_free
from harness.errors import StorageError, UserError, echo
from harness.store.leases import Lease, Leases, RunBusy

#: 1: runs and cells. 2: leases (who is writing a run).
SCHEMA_VERSION = 2

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


class ResultsStore:
    """Runs and their cells in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Autocommit mode: every write goes through _transaction, which takes the write lock up front.
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            version = self._version()
            if version != SCHEMA_VERSION:  # a store that is up to date is only read here (it may be read-only)
                with self._transaction():
                    self._migrate(self._version())
        except sqlite3.DatabaseError as error:
            if (fault := storage_fault(error)) not in (None, "read-only"):  # read-only: a setting to fix
                raise StorageError(self.path, fault) from None
            raise UserError(f"results store {self.path}: {store_problem(error)}") from None
        self._leases = Leases(self._db, self.path)

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
        """One write transaction, holding SQLite's write lock from the start (no lost updates).

        A write the disk refuses (full, read-only) raises :class:`StorageError` naming the store; the
        transaction is rolled back, by SQLite itself where the failure already ended it.
        """
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self._db.in_transaction:  # SQLite ends a transaction itself on a full disk
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            fault = storage_fault(error)
            if fault is None:
                raise
            if self._db.in_transaction:  # a COMMIT that failed leaves it open
                self._db.execute("ROLLBACK")
            raise StorageError(self.path, fault) from None

    def close(self) -> None:
        """Release the leases this store holds (their runs become resumable at once), then close.

        A release the disk refuses is left: the lease dies with this process, so the run is
        resumable anyway, and the error that brought us here is the one to report.
        """
        for run_id in self._leases.held():
            try:
                self.release(run_id)
            except StorageError:
                pass
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
            self._leases.check_owner(run_id)
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
        return self._leases.get(run_id)

    def open_run(self, suite: str, config_hash: str, resume: str | None, new_run: Callable[[], RunInfo],
                 same_settings: Callable[[RunInfo], bool] = lambda run: True) -> tuple[RunInfo, bool, list[Lease]]:
        """Claim the run to write into, in one transaction: the one asked for (``resume`` = a run id),
        else (``resume`` None) the newest unfinished run of these settings (``config_hash``, and
        ``same_settings`` true of it) that nobody live is writing, else a new one from ``new_run()``.

        Returns the run, whether it is resumed, and the live leases passed over (to tell the user).
        A run id whose owner is alive raises :class:`RunBusy`. The lease is this store's until
        :meth:`release` or :meth:`close`; a background thread refreshes it every
        :data:`~harness.store.leases.HEARTBEAT_INTERVAL` seconds meanwhile (a long cell commits nothing for minutes).
        """
        with self._transaction():
            self._forget_the_dead()
            if resume not in (None, "no"):
                run = self.run(resume)
                lease = self.lease(run.run_id)
                if lease is not None and lease.live() and not self._leases.holds(lease):
                    raise RunBusy(f"resume={run.run_id}: that run is being written by {lease.describe()}; wait for "
                                  "it to finish (or stop it), or start a new run with resume=no")
                self._leases.claim(run.run_id, now())
                return run, True, []
            passed: list[Lease] = []
            if resume is None:
                unfinished = [r for r in self.runs(suite)
                              if r.config_hash == config_hash and r.status != "complete" and same_settings(r)]
                for run in reversed(unfinished):
                    lease = self.lease(run.run_id)
                    if lease is not None and lease.live():
                        passed.append(lease)
                        continue
                    self._leases.claim(run.run_id, now())
                    return run, True, passed
            run = new_run()
            while self._db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run.run_id,)).fetchone():
                run = dataclasses.replace(run, run_id=run.run_id + "x")
            self._insert_run(run)
            self._leases.claim(run.run_id, now())
            return run, False, passed

    def _forget_the_dead(self) -> None:
        """Drop leases whose owners died, and the temporary files those owners were writing when killed."""
        for run_id in self._leases.forget_the_dead():
            row = self._db.execute("SELECT suite FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None:
                for stale in (self.path.parent / row["suite"] / run_id).glob(".results.*.tmp"):
                    stale.unlink(missing_ok=True)

    def forget_host(self, host: str) -> None:
        """Drop every lease held on ``host``: the caller knows all its processes have ended (a container
        that exited), so their runs are resumable now rather than after :data:`~harness.store.leases.LEASE_TIMEOUT`."""
        with self._transaction():
            self._leases.forget_host(host)

    def release(self, run_id: str) -> None:
        """Give up the lease on a run (it stays resumable when unfinished)."""
        token = self._leases.stop(run_id)
        if token is not None:
            with self._transaction():
                self._leases.delete(run_id, token)

    # cells
    def save_cell(self, run_id: str, position: int, cell: Cell, result: CellResult) -> None:
        """Commit one finished cell (replacing a failed earlier attempt of the same cell)."""
        with self._transaction():
            self._leases.check_owner(run_id)
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
    """Why a store written by a newer harness is refused, and what to do."""
    return (f"results store {path} was written by a newer harness (schema {version}, this one reads up to "
            f"{SCHEMA_VERSION}): upgrade harness or use another reports folder")


#: SQLite's messages for a write the disk refused, and what each means to the user.
_STORAGE_MESSAGES = {
    "database or disk is full": "no space left on device",
    "disk i/o error": "input/output error (is the disk full or gone?)",
    "attempt to write a readonly database": "read-only",
}


def storage_fault(error: sqlite3.Error) -> str | None:
    """The cause, in words, when ``error`` is the disk refusing a write; None for any other error."""
    text = str(error).lower()
    return next((cause for message, cause in _STORAGE_MESSAGES.items() if message in text), None)


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
