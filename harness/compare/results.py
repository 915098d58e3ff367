"""What a comparison reads: a run reduced to its cells' identities, statuses, records and repeated
samples, wherever it came from (the results store, a results.json or a baseline file), and the
cells of one comparison row on one side.

A baseline may pool several runs of the same code (:func:`pool`): each cell then says which run
measured it, because timings vary more from one run (one process) to the next than between the
epochs of one run, and only runs show that noise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from harness.calibration import VERSION, drift, halves_spread, spread
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
    #: (``artifacts['calibration']``, :func:`harness.calibration.around_cell`): the machine's
    #: speed while the cell ran. None where the run took none (older runs, other executors).
    calibration: float | None = None
    #: The run that measured this cell, in a baseline pooled from several runs ("" in a single run).
    run: str = ""

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
            # four: enough for a real slowdown to stand out of a shared machine's noise.
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
    #: The runs pooled into this one (:func:`pool`), oldest first; empty for a single run.
    runs: tuple[str, ...] = ()

    @property
    def described(self) -> str:
        """The run id, or for pooled runs the newest id and how many runs: for messages and tables."""
        return f"{self.run_id} (+{len(self.runs) - 1} more runs)" if len(self.runs) > 1 else self.run_id

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
        the same fixed work varied in time on the machine while the run was measured; for the
        calibrations before and after the cells, the larger of the two (worked out from the samples,
        so calibrations stored before that rule read the same way)."""
        if self.calibration.get("runs"):
            # Pooled: its samples come from several runs; their spread is the runs' typical one.
            stored = self.calibration.get("spread")
            return float(stored) if isinstance(stored, (int, float)) and math.isfinite(stored) else None
        samples = self.calibration.get("samples") or []
        if "drift" in self.calibration and len(samples) >= 6 and len(samples) % 2 == 0:
            # Merged from a calibration before the cells and one after: each half's own steadiness.
            return halves_spread(samples[: len(samples) // 2], samples[len(samples) // 2:])
        return spread(samples)

    @property
    def calibration_drift(self) -> float | None:
        """How much the machine's speed changed while the cells ran: the calibration after them over the
        one before. Calibrations merged before the drift was stored hold both halves' samples in order."""
        stored = self.calibration.get("drift")
        if isinstance(stored, (int, float)) and stored > 0:
            return float(stored)
        samples = self.calibration.get("samples") or []
        if self.calibration.get("runs"):
            return None  # pooled: its samples are several runs' in turn, not one run's before and after
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

    def metrics(self) -> list[str]:
        """The metrics a threshold can judge in this run: those with a number in some cell, sorted."""
        names = {name for cell in self.cells for name in (*cell.record, *cell.samples) if cell.values(name)}
        return sorted(names - set(POOLED))


@dataclass(frozen=True)
class Side:
    """The cells of one row on one side of a comparison, with timings already scaled."""

    cells: tuple[CellSummary, ...]
    time_scale: float = 1.0

    def sample(self, metric: str) -> tuple[float, ...]:
        """All measurements of ``metric`` pooled over the row's cells (failed cells excluded)."""
        scale = self.time_scale if is_timing(metric) else 1.0
        return tuple(v * scale for c in self.cells if c.status == "ok" for v in c.values(metric))

    def run_medians(self, metric: str) -> tuple[float, ...]:
        """Per run that measured the row, the median of its measurements of ``metric``: one value per
        process, the samples that show the run-to-run noise."""
        by_run: dict[str, list[CellSummary]] = {}
        for cell in self.cells:
            by_run.setdefault(cell.run, []).append(cell)
        samples = (Side(tuple(cells), self.time_scale).sample(metric) for cells in by_run.values())
        return tuple(statistics.median(values) for values in samples if values)

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


def pool(runs: list[RunResults]) -> RunResults:
    """Several runs of one suite and configuration as one baseline: every run's cells, each marked with
    its run, the newest run's identity and environment, and a calibration that stands for all of them
    (the median of the runs' calibrations, their typical spread, the largest drift)."""
    if not runs:
        raise ValueError("no runs to pool")
    newest = runs[-1]
    cells = [replace(cell, run=cell.run or run.run_id) for run in runs for cell in run.cells]
    environment = dict(newest.environment)
    measured = [run for run in runs if run.calibration_seconds is not None]
    if measured and len({run.calibration.get("version") for run in measured}) == 1:
        spreads = [s for s in (run.calibration_spread for run in measured) if s is not None]
        drifts = [d for d in (run.calibration_drift for run in runs) if d is not None]
        environment["calibration"] = {
            **newest.calibration,
            "seconds": statistics.median(run.calibration_seconds for run in measured),
            "samples": [float(v) for run in measured for v in run.calibration.get("samples") or []],
            "spread": statistics.median(spreads) if spreads else None,
            "drift": max(drifts, key=lambda d: max(d, 1 / d)) if drifts else None,
            "runs": len(measured),
        }
    ids = tuple(dict.fromkeys(run_id for run in runs for run_id in (run.runs or (run.run_id,))))
    return replace(newest, cells=cells, environment=environment, runs=ids)
