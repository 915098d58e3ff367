"""A run folder's results files, written from the store and read back: ``results.csv`` (one row per
cell, its record) and ``results.json`` (the whole run: settings, environment, every cell's record and
artifacts).

The store holds every finished cell the moment it is saved; these files are a readable copy of it.
The runner rewrites them from the store while a run goes on (not after every cell) and once more when
the run is rendered, so they may lag the store, but each is written to a temporary file and renamed:
a reader never finds half a file.

``results.json`` is versioned like the store (``schema_version``) and has one reader,
:func:`read_run_file`: a file from a newer harness is refused rather than misread, and the file is
validated whole before anything reads it, so a hand-edited or truncated one is one line naming the
file and the field (``results file X: cells[2].record: field required``), never a traceback from
deep inside a caller. Unknown keys are read past: older harnesses wrote fewer of them.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, TypeVar

from pydantic import BaseModel, Field, ValidationError

from harness.cells import Cell, CellResult, StoredCell, nan_free
from harness.errors import UserError
from harness.paths import atomic_write
from harness.store.database import SCHEMA_VERSION, RunInfo
from harness.suite.models import OpenModel
from harness.suite.regression_settings import RegressionSettings


def write_run_files(folder: Path, run: RunInfo, cells: list[StoredCell], columns: Iterable[str]) -> None:
    """Write ``results.csv`` (``columns`` first, then the records' other keys) and ``results.json``
    for a run, each atomically."""
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


# results.json, as a schema
class Calibration(OpenModel):
    """``environment.calibration``: the fixed workload's timing (see harness.calibration)."""

    version: int | None = None
    seconds: float | None = Field(None, gt=0)
    samples: list[float] = Field(default_factory=list)


class Environment(OpenModel):
    """What the run was measured on; a comparison reads the calibration and diffs the rest."""

    calibration: Calibration | None = None


class ResultsCell(OpenModel):
    """One cell of a results.json: what it was and what it produced."""

    cell: Cell  # validated field by field, as the dataclass declares them
    status: str
    error: str = ""
    record: dict[str, Any]
    artifacts: dict[str, Any] = Field(default_factory=dict)


class RunConfig(OpenModel):
    """The resolved suite stored with the run; its regression settings are checked here, for comparisons."""

    regression: RegressionSettings = Field(default_factory=RegressionSettings)


class ResultsFile(OpenModel):
    """A run folder's ``results.json``, as :func:`write_run_files` writes it."""

    schema_version: int = Field(ge=1, le=SCHEMA_VERSION)
    run_id: str
    suite: str
    profile: str
    config_hash: str
    created: str
    finished: str | None = None
    status: str
    environment: Environment
    config: RunConfig
    cells: list[ResultsCell]


def read_run_file(path: Path) -> tuple[RunInfo, list[StoredCell]]:
    """A run and its cells from a ``results.json`` (or the run folder holding one); a one-line
    UserError naming the file and the field when it is missing, newer or malformed."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    document = read_json_file(path, ResultsFile, "results file", SCHEMA_VERSION, "upgrade harness")
    # Validated, then handed on as written (exclude_unset: no defaults the file did not hold).
    run = RunInfo(document.run_id, document.suite, document.profile, document.config_hash, document.created,
                  document.finished, document.status, document.config.model_dump(exclude_unset=True),
                  document.environment.model_dump(exclude_unset=True))
    cells = [StoredCell(item.cell, CellResult(item.status, item.record, item.artifacts, item.error))
             for item in document.cells]
    return run, cells


Model = TypeVar("Model", bound=BaseModel)


def read_json_file(path: Path, schema: type[Model], kind: str, newest: int, advice: str) -> Model:
    """``path`` read as JSON and validated by ``schema``; a UserError of one line naming the file and
    the first wrong field otherwise. ``kind`` names the file in messages; ``newest`` is the newest
    ``schema_version`` this harness reads, ``advice`` what to do about a newer one."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"no {kind} at {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {kind} {path}: {error}") from None
    except (json.JSONDecodeError, RecursionError) as error:
        raise UserError(f"{kind} {path} is not valid JSON: {str(error)[:120]}") from None
    if not isinstance(document, dict):
        raise UserError(f"{kind} {path}: expected a JSON object at the top, found {_json_type(document)}")
    version = document.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > newest:
        raise UserError(f"{kind} {path} has schema version {version}; this harness reads 1..{newest}: {advice}")
    try:
        return schema.model_validate(document)
    except ValidationError as error:
        raise UserError(f"{kind} {path}: {_first_problem(error)}") from None


def _first_problem(error: ValidationError) -> str:
    """The first error of a validation as ``field.path: message (found TYPE)``, with a count of the rest."""
    problems = error.errors()
    first = problems[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(".")
    found = "" if first["type"] == "missing" else f" (found {_json_type(first.get('input'))})"
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"{where or 'the document'}: {first['msg'].lower()}{found}{more}"


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null",
             int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)
