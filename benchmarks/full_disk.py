"""``harness`` with a disk that is full from the moment the process receives SIGUSR1 (a stand-in for
filling a real filesystem where none can be mounted).

    python -m benchmarks.full_disk run suite=... reports=...

After the signal, every file opened for writing, every rename and every SQLite write of this process
fails as on a full disk: ``OSError(ENOSPC)`` and SQLite's ``database or disk is full``. Reads still work.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import signal
import sqlite3
import sys

FULL = False


def _full(*names: object) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *(str(name) for name in names[:1]))


def _writing(mode: str) -> bool:
    return any(flag in mode for flag in "wax+")


_open, _replace, _connect = builtins.open, os.replace, sqlite3.connect


def open_(file, mode="r", *args, **kwargs):
    if FULL and _writing(mode):
        raise _full(file)
    return _open(file, mode, *args, **kwargs)


def replace(source, destination, *args, **kwargs):
    if FULL:
        raise _full(destination)
    return _replace(source, destination, *args, **kwargs)


class FullConnection(sqlite3.Connection):
    """A connection whose writes fail once the disk is full (reads and ROLLBACK still work)."""

    def execute(self, sql, *args):
        if FULL and sql.split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE", "COMMIT", "CREATE"):
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)


def connect(*args, **kwargs):
    return _connect(*args, factory=FullConnection, **kwargs)


def become_full(signum: int, frame: object) -> None:
    global FULL
    FULL = True


def main() -> int:
    builtins.open = io.open = open_
    os.replace = replace
    sqlite3.connect = connect
    signal.signal(signal.SIGUSR1, become_full)
    from harness.cli import main as harness

    return harness(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
