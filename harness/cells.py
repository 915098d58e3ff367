"""A cell: one self-contained unit of work (suite x model x backend x device x seed).

A cell carries everything needed to run it as plain JSON data (the resolved suite included), so an
executor can hand it to this process, a container or a cluster node alike, and gets a
:class:`CellResult` back.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.progress import RunProgress


@dataclass(frozen=True)
class Cell:
    """What to run. ``key`` is unique within a run; ``params`` holds task-specific settings."""

    suite: str
    task: str
    model: str
    backend: str
    device: str
    seed: int
    config: dict[str, Any] = field(repr=False, compare=False)
    params: dict[str, Any] = field(default_factory=dict)
    #: Keys of the cells whose records this one is handed (``RunContext.inputs``); it runs after them.
    needs: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> str:
        extra = "".join(f"|{name}={value}" for name, value in sorted(self.params.items()))
        return f"model={self.model}|backend={self.backend}|device={self.device}|seed={self.seed}{extra}"

    def identity(self) -> dict[str, Any]:
        """The columns that say which cell a record is of: the first ones of every cell's record."""
        return {"suite": self.suite, "model": self.model, "backend": self.backend, "device": self.device,
                "seed": self.seed}

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Cell":
        return cls(**json.loads(text))


@dataclass
class CellResult:
    """What a cell produced.

    ``record`` holds the flat scalar columns of ``results.csv``; ``artifacts`` the rest (per-epoch
    history, confusion matrix, file names), kept in ``results.json`` and the store.
    """

    status: str  # "ok" or "failed"
    record: dict[str, Any]
    artifacts: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @classmethod
    def failed(cls, cell: Cell, message: str) -> "CellResult":
        """The result of a cell that failed with ``message`` (one line) before producing anything: its
        record is the cell's identity, status and error, whichever executor ran it."""
        return cls("failed", {**cell.identity(), "status": "failed", "error": message}, {}, message)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class RunContext:
    """What a cell may use while it runs: where to put files, and how to report progress."""

    run_dir: Path
    progress: "RunProgress"
    #: The reports folder the run lives in (where other runs, e.g. ``options.from_run``, are looked up).
    reports: Path
    #: Follows the current cell's training (epochs, batches); set by the runner before each cell.
    observer: Any = None
    #: Records of the run's finished cells by key; a cell reads only those it ``needs``.
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def artifact_dir(self, cell: Cell) -> Path:
        """A folder of this cell's own, for figures and saved weights."""
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in cell.key.replace("|", "__"))
        # The readable name alone is not unique ("Net A" and "Net_A" both become Net_A): a short hash of
        # the real key keeps two cells from sharing a folder and overwriting each other's files.
        digest = hashlib.sha256(cell.key.encode()).hexdigest()[:8]
        path = self.run_dir / "cells" / f"{safe}__{digest}"
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True)
class StoredCell:
    """A finished cell as read back from the results store."""

    cell: Cell
    result: CellResult

    @property
    def record(self) -> dict[str, Any]:
        return self.result.record


#: The artifact of a cell that does several units of work in one (the perceptron trains every digit
#: pair together): a list of ``{"model", "params", "record", ...their own artifacts}``.
UNITS = "units"
#: The columns of such a cell's record that each of its units shares (who ran it, where, and how it went).
UNIT_SHARED = ("suite", "backend", "device", "seed", "status", "error", "executor", "node", "queued_seconds")


def units(cells: list[StoredCell]) -> list[StoredCell]:
    """The units of work among ``cells``, one record each: what tables, claims and comparisons judge.

    A cell is one unit, unless it did several in one (its :data:`UNITS` artifact): then each finished
    unit becomes a StoredCell of its own, with the unit's model, params and record over the cell's
    :data:`UNIT_SHARED` columns, and the cell's calibration (the units ran inside it).
    """
    out: list[StoredCell] = []
    for stored in cells:
        parts = stored.result.artifacts.get(UNITS)
        if parts is None:
            out.append(stored)
            continue
        shared = {key: stored.record[key] for key in UNIT_SHARED if key in stored.record}
        calibration = stored.result.artifacts.get("calibration")
        for part in parts:
            cell = replace(stored.cell, model=part["model"], params=part["params"])
            artifacts = {key: value for key, value in part.items() if key not in ("model", "params", "record")}
            if calibration is not None:
                artifacts["calibration"] = calibration
            record = {**shared, "model": cell.model, **part["record"]}
            out.append(StoredCell(cell, CellResult(stored.result.status, record, artifacts, stored.result.error)))
    return out


def nan_free(value: Any) -> Any:
    """JSON has no NaN: store it as None so every reader agrees on 'missing'."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: nan_free(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_free(item) for item in value]
    return value
