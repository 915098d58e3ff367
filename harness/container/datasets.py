"""The datasets an image carries, and the host's cache a container mounts.

An image carries the datasets the host's cache holds verified: the launcher adds their files to the
build context under ``docker/datasets/NAME/`` (``scripts/stage-datasets`` copies them there for a plain
``docker build``), and the image build checks each against ``docker/datasets/MANIFEST``, the SHA-256
table of :mod:`harness.data` written out, before it keeps them (docker/datasets.sh).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from harness import data

if TYPE_CHECKING:
    from rich.console import Console

STAGE = "docker/datasets"
"""Where a dataset's files go in the build context (and in a checkout, for a plain ``docker build``)."""
MANIFEST = f"{STAGE}/MANIFEST"
"""The SHA-256 table the image build checks the staged files against; :func:`manifest_text` makes it."""


def manifest_text() -> str:
    """``docker/datasets/MANIFEST`` as it must read: dataset, folder in /usr/share/datasets, file, SHA-256."""
    lines = ["# dataset  folder-in-/usr/share/datasets  file  sha256",
             "# Made from harness/data/fetch.py's DATASETS; tests/test_container.py fails when the two differ."]
    for name, info in data.DATASETS.items():
        lines += [f"{name} {info.system_name} {file} {sha}" for file, sha in info.sha256.items()]
    return "\n".join(lines) + "\n"


def verified(data_dir: Path) -> list[str]:
    """The datasets whose every file is in ``data_dir`` with the right SHA-256."""
    with environment("HARNESS_DATA", str(data_dir)):
        return [name for name in data.DATASETS if set(data.verify(name).values()) == {"ok"}]


def context_files(names: Iterable[str], data_dir: Path) -> dict[str, Path]:
    """Build-context entries of the datasets ``names`` in ``data_dir``: arcname -> host file."""
    return {f"{STAGE}/{name}/{file}": data_dir / name / file
            for name in names for file in data.DATASETS[name].files}


def prefetch(datasets: Iterable[str] | None, data_dir: Path, console: Console, *, required: bool) -> None:
    """Fill ``data_dir`` with ``datasets`` (default: all) on the host, where npm and apt can fetch them.

    Already-cached files are only verified. When ``required`` is false a dataset the host cannot get
    is a warning, not an error: the run may not need it, and the container says so if it does.
    """
    names = list(datasets) if datasets is not None else list(data.DATASETS)
    with environment("HARNESS_DATA", str(data_dir)):
        for name in names:
            try:
                data.ensure(name, log=lambda line: console.print(line, markup=False, highlight=False))
            except data.DataError as error:
                if required:
                    raise
                console.print(f"warning: {error}", markup=False, highlight=False)


@contextmanager
def environment(name: str, value: str) -> Iterator[None]:
    """Set the environment variable ``name`` for the block.

    harness.data finds its cache through ``$HARNESS_DATA``: this points it at the folder a container mounts.
    """
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old
