"""Where things go on disk, and how files are written so that no reader ever sees half of one."""

from __future__ import annotations

import os
from pathlib import Path


def reports_dir() -> Path:
    """The reports folder: ``$HARNESS_REPORTS``, else ``./reports``."""
    return Path(os.environ.get("HARNESS_REPORTS", "reports"))


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder, then rename: readers never see half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def point_latest(suite_folder: Path, run_id: str) -> None:
    """Make ``reports/<suite>/latest`` point at ``run_id`` (a relative symlink, replaced atomically)."""
    link = suite_folder / "latest"
    temporary = suite_folder / f".latest.{os.getpid()}"
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(run_id)
    os.replace(temporary, link)
