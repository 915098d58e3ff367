"""Where things go on disk, and how files are written so that no reader ever sees half of one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from harness.errors import WRITE_ERRNOS, storage_error


def reports_dir() -> Path:
    """The reports folder: ``$HARNESS_REPORTS``, else ``./reports``."""
    return Path(os.environ.get("HARNESS_REPORTS", "reports"))


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder, then rename: readers never see half a file."""
    with replacing(path, f".{path.name}.{os.getpid()}.tmp") as temporary:
        temporary.write_text(text)


@contextlib.contextmanager
def replacing(path: Path, temporary_name: str) -> Iterator[Path]:
    """The temporary file to write ``path`` through, in the same folder; it replaces ``path`` when the
    block ends well, and is removed when it does not (a full disk must not leave half-files behind)."""
    temporary = path.with_name(temporary_name)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
            # A write the folder refused: a storage fault naming the file being written (a writer that
            # fails on flush names none, or the temporary).
            named = error.filename not in (None, str(temporary))
            raise storage_error(error if named else OSError(error.errno, error.strerror, str(path))) from error
        raise


def point_latest(suite_folder: Path, run_id: str) -> None:
    """Make ``reports/<suite>/latest`` point at ``run_id`` (a relative symlink, replaced atomically)."""
    with replacing(suite_folder / "latest", f".latest.{os.getpid()}") as temporary:
        if temporary.is_symlink() or temporary.exists():
            temporary.unlink()
        temporary.symlink_to(run_id)
