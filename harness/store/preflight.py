"""The reports folder checked before a run starts: whatever would stop it writing there is found
before any work is done, and said in one line with what to do."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from harness.errors import StorageError, UserError, echo
from harness.store.database import SCHEMA_VERSION, newer_store_message, store_problem

#: Free space below which a run is refused before it starts (exit 3): less cannot hold the store, a
#: run's page and its figures. A floor, not a promise: a run that fills the disk later stops with one
#: line (exit 3), its committed cells kept.
MIN_FREE_BYTES = 1 << 20


def check_reports(reports: Path, suite: str | None = None, resume: str | None = None) -> None:
    """Find whatever would stop a run writing into ``reports`` before any work starts; raises UserError.

    Nothing is created here: the folder may not exist yet, so the nearest folder that does must let
    it be made, and its filesystem must have :data:`MIN_FREE_BYTES` free (else StorageError, exit 3).
    An existing store must be a writable, sound SQLite file this harness can read, and a
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
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise StorageError(reports, f"only {free // 1024} KiB free on its filesystem, a run needs at least "
                                    f"{MIN_FREE_BYTES // 1024} KiB", f"nothing was written; free space or {advice}")
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
