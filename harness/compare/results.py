"""What a comparison reads: a run reduced to its cells' identities, statuses, records and repeated
samples, wherever it came from (the results store, a results.json or a baseline file), and the
cells of one comparison row on one side."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.compare.calibration import VERSION, drift, spread
from harness.suite.regression_settings import RegressionSettings
from harness.thresholds import is_timing

#: Cell parameters that only repeat a measurement: cells differing in these are pooled into one row.
POOLED = ("seed", "repeat")


@dataclass(frozen=True)
class CellSummary:
    """One finished cell as a comparison needs it: identity, status, scalar record, repeated samples."""

    model: str
    backend: str
    device: str
    seed: int
    params: dict[str, Any]
    status: str
    error: str
    record: dict[str, Any]
    #: Repeated measurements of a metric within the cell (``artifacts['timings']``, per-epoch seconds).
    samples: dict[str, list[float]] = field(default_factory=dict)
    #: Median seconds of the calibration workload taken just before and after this cell
    #: (``artifacts['calibration']``, :func:`harness.compare.calibration.around_cell`): the machine's
    #: speed while the cell ran. None where the run took none (older runs, other executors).
    calibration: float | None = None

    @property
    def row(self) -> str:
        """The comparison row this cell belongs to: everything but seed and repeat."""
        extra = "".join(f" {k}={v}" for k, v in sorted(self.params.items()) if k not in POOLED)
        return f"{self.model} · {self.backend}/{self.device}{extra}"

    def values(self, metric: str) -> list[float]:
        """Every measurement of ``metric`` in this cell (none if it is not a number here)."""
        if self.samples.get(metric):
            return [float(v) for v in self.samples[metric]]
        value = self.record.get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return [float(value)]
        return []

    @classmethod
    def from_parts(cls, cell: dict[str, Any], status: str, error: str, record: dict[str, Any],
                   artifacts: dict[str, Any]) -> "CellSummary":
        """From a stored cell's pieces; picks up repeated timings where the run recorded them."""
        samples = {name: list(values) for name, values in (artifacts.get("timings") or {}).items()}
        history = artifacts.get("history") or []
        epoch_seconds = [epoch["seconds"] for epoch in history if isinstance(epoch, dict) and "seconds" in epoch]
        if len(epoch_seconds) > 1:
            samples.setdefault("seconds_per_epoch", epoch_seconds)
            # Without repeats, each epoch measures the same training rate once more: epochs x its time
            # is a sample of the whole training time. Two epochs x four seeds give eight samples, not
            # four; on the shared machine that is what let a 30 % slowdown stand out of the noise.
            samples.setdefault("train_seconds", [seconds * len(epoch_seconds) for seconds in epoch_seconds])
        measured = artifacts.get("calibration") or {}
        seconds = measured.get("seconds") if measured.get("version") == VERSION else None
        return cls(cell["model"], cell["backend"], cell["device"], int(cell["seed"]), dict(cell.get("params") or {}),
                   status, error, record, samples,
                   float(seconds) if isinstance(seconds, (int, float)) and seconds > 0 else None)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunResults:
    """A run reduced to what a comparison reads; built from the store, a results.json or a baseline file."""

    suite: str
    run_id: str
    profile: str
    config_hash: str
    created: str
    environment: dict[str, Any]
    regression: dict[str, Any]
    cells: list[CellSummary]

    def rows(self) -> dict[str, list[CellSummary]]:
        """Cells grouped by comparison row, in first-seen order."""
        rows: dict[str, list[CellSummary]] = {}
        for cell in self.cells:
            rows.setdefault(cell.row, []).append(cell)
        return rows

    @property
    def calibration(self) -> dict[str, Any]:
        return self.environment.get("calibration") or {}

    @property
    def calibration_seconds(self) -> float | None:
        seconds = self.calibration.get("seconds")
        return float(seconds) if isinstance(seconds, (int, float)) and seconds > 0 else None

    @property
    def calibration_spread(self) -> float | None:
        """The interquartile range of the run's calibration samples, percent of their median: how much
        the same fixed work varied in time on the machine while the run was measured (worked out
        from the samples, so calibrations stored before the spread was recorded have one too)."""
        return spread(self.calibration.get("samples") or [])

    @property
    def calibration_drift(self) -> float | None:
        """How much the machine's speed changed while the cells ran: the calibration after them over the
        one before. Calibrations merged before the drift was stored hold both halves' samples in order."""
        stored = self.calibration.get("drift")
        if isinstance(stored, (int, float)) and stored > 0:
            return float(stored)
        samples = self.calibration.get("samples") or []
        if len(samples) >= 6 and len(samples) % 2 == 0:
            return drift(samples[: len(samples) // 2], samples[len(samples) // 2:])
        return None

    def calibration_text(self) -> str:
        """'0.035 s ± 12 %': the calibration's median and spread, for tables and notes ('–' without one)."""
        seconds, spread = self.calibration_seconds, self.calibration_spread
        if seconds is None:
            return "–"
        return f"{seconds:.3f} s" + (f" ± {spread:.0f} %" if spread is not None else "")

    def settings(self) -> RegressionSettings:
        """The suite's regression settings as stored with the run (defaults where it had none)."""
        return RegressionSettings.model_validate(self.regression or {})


@dataclass(frozen=True)
class Side:
    """The cells of one row on one side of a comparison, with timings already scaled."""

    cells: tuple[CellSummary, ...]
    time_scale: float = 1.0

    def sample(self, metric: str) -> tuple[float, ...]:
        """All measurements of ``metric`` pooled over the row's cells (failed cells excluded)."""
        scale = self.time_scale if is_timing(metric) else 1.0
        return tuple(v * scale for c in self.cells if c.status == "ok" for v in c.values(metric))

    @property
    def ok(self) -> bool:
        return bool(self.cells) and all(cell.status == "ok" for cell in self.cells)

    @property
    def calibration(self) -> float | None:
        """The median of the row's own cell calibrations, or None unless every finished cell has one."""
        measured = [cell.calibration for cell in self.cells if cell.status == "ok"]
        if not measured or None in measured:
            return None
        return statistics.median(measured)
