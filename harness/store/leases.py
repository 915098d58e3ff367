"""Who is writing a run: leases in the store's ``leases`` table, kept alive by heartbeat threads.

A writer takes a lease (its pid, host and a heartbeat) in the same transaction that picks the run, so
two processes never write one run. While it holds the lease, a background thread refreshes the
heartbeat every :data:`HEARTBEAT_INTERVAL` seconds (a long cell commits nothing for minutes). A lease
whose owner died (its pid is gone on this host, or its heartbeat is older than :data:`LEASE_TIMEOUT`)
no longer counts, and the run can be resumed.

:class:`Leases` does the work on the store's connection; :class:`~harness.store.ResultsStore` owns the
transactions it runs in.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError

#: A lease whose heartbeat is older than this (seconds) is dead whoever holds it: the owner is gone,
#: or on another host (a container, a cluster node) where its pid cannot be checked.
LEASE_TIMEOUT = 120.0
#: How often a writer refreshes its lease between cells (each committed cell refreshes it too).
HEARTBEAT_INTERVAL = 15.0


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


class Leases:
    """The ``leases`` table seen from one store connection, and the leases this process holds there.

    Every method that writes runs inside the caller's write transaction; only the heartbeat threads
    write on their own (each on its own connection to ``path``).
    """

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path
        #: The leases held here: run id -> token (checked on every write to the run).
        self._held: dict[str, str] = {}
        #: Per held lease, the event that stops its heartbeat thread, and the thread.
        self._beating: dict[str, tuple[threading.Event, threading.Thread]] = {}

    def get(self, run_id: str) -> Lease | None:
        """The lease on a run, live or not (None: nobody has claimed it since it was last released)."""
        row = self._db.execute("SELECT * FROM leases WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else _lease(row)

    def held(self) -> list[str]:
        """The runs whose leases this process holds."""
        return list(self._held)

    def holds(self, lease: Lease) -> bool:
        """Whether ``lease`` is one of this process's own."""
        return lease.token in self._held.values()

    def forget_the_dead(self) -> list[str]:
        """Drop the leases whose owners died; returns their runs (the caller clears what those owners left)."""
        dead = [lease.run_id for lease in map(_lease, self._db.execute("SELECT * FROM leases").fetchall())
                if not lease.live()]
        for run_id in dead:
            self._db.execute("DELETE FROM leases WHERE run_id = ?", (run_id,))
        return dead

    def claim(self, run_id: str, acquired: str) -> None:
        """Take the lease on ``run_id`` (replacing a dead one) at time ``acquired`` (the store's
        timestamp, kept for people reading the table) and start its heartbeat thread."""
        token = uuid.uuid4().hex
        self._db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?)",
                         (run_id, token, os.getpid(), socket.gethostname(), acquired, time.time()))
        self._held[run_id] = token
        if run_id not in self._beating:
            stop = threading.Event()
            thread = threading.Thread(target=self._beat, args=(run_id, token, stop), name=f"lease {run_id}",
                                      daemon=True)
            thread.start()
            self._beating[run_id] = stop, thread

    def _beat(self, run_id: str, token: str, stop: threading.Event) -> None:
        # Its own connection: an SQLite connection is not for two threads at once.
        db = sqlite3.connect(self._path, timeout=30)
        try:
            while not stop.wait(HEARTBEAT_INTERVAL):
                with db:
                    db.execute("UPDATE leases SET heartbeat = ? WHERE run_id = ? AND token = ?",
                               (time.time(), run_id, token))
        except sqlite3.Error:
            pass  # the store is unreachable: the next commit in the main thread says so
        finally:
            db.close()

    def check_owner(self, run_id: str) -> None:
        """Refuse to write a run whose lease this process held and has lost; else refresh its heartbeat."""
        token = self._held.get(run_id)
        if token is None:
            return  # not a run this process claimed (tests, nightly's calibration update)
        lease = self.get(run_id)
        if lease is None or lease.token != token:
            taken = f"it is now written by {lease.describe()}" if lease else "its lease was released"
            raise UserError(f"run {run_id}: this process lost its lease (it stalled for over {LEASE_TIMEOUT:.0f} s "
                            f"without a heartbeat) and {taken}; nothing more is written by this process")
        self._db.execute("UPDATE leases SET heartbeat = ? WHERE run_id = ?", (time.time(), run_id))

    def forget_host(self, host: str) -> None:
        """Drop every lease held on ``host``."""
        self._db.execute("DELETE FROM leases WHERE host = ?", (host,))

    def stop(self, run_id: str) -> str | None:
        """Stop the heartbeat of this process's lease on ``run_id`` and let go of it; returns its token
        (None: not held), for :meth:`delete` to remove in a transaction."""
        stop, thread = self._beating.pop(run_id, (None, None))
        if stop is not None:
            stop.set()
            thread.join()
        return self._held.pop(run_id, None)

    def delete(self, run_id: str, token: str) -> None:
        """Remove the lease on ``run_id`` if it is still the one with ``token``."""
        self._db.execute("DELETE FROM leases WHERE run_id = ? AND token = ?", (run_id, token))


def _lease(row: sqlite3.Row) -> Lease:
    return Lease(row["run_id"], row["token"], row["pid"], row["host"], row["heartbeat"])
