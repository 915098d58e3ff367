"""The interface every task implements, and what a running cell is handed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from pydantic import BaseModel

from harness.cells import Cell, CellResult, RunContext, StoredCell
from harness.render.tables import Table, write_tables
from harness.suite.models import StrictModel

if TYPE_CHECKING:
    from rich.console import Console

    from harness.backends.base import Backend
    from harness.suite.schema import Suite


class NoOptions(StrictModel):
    """A task without options of its own."""


class CellSetup(NamedTuple):
    """What every cell's run starts from: its suite decoded, the task options, the backend and device."""

    suite: "Suite"
    options: Any
    backend: "Backend | None"
    #: The device resolved by the backend ("auto" becomes "cpu" or "cuda"); the cell's own without a backend.
    device: str


@dataclass(frozen=True)
class CellWork:
    """How much computing a cell does, known from the suite alone (no data read, no framework imported):
    what a time estimate multiplies by a throughput, and the run-wide progress bar weighs cells by."""

    epochs: int
    #: Images trained on per epoch.
    train_samples: int
    #: Optimizer steps over the whole cell (every repeat), each with a fixed cost beyond its FLOPs.
    steps: int
    #: FLOPs of training: 3 x forward FLOPs per sample (forward, and a backward pass of about twice
    #: that) x samples x epochs x repeats.
    training_flops: int
    #: FLOPs of the forward passes that only evaluate: validation each epoch, the final predictions.
    evaluation_flops: int
    #: Share of the forward FLOPs in convolutions, which run nearer the calibration's speed than
    #: dense layers do (:mod:`harness.estimate`).
    conv_share: float

    @property
    def flops(self) -> int:
        return self.training_flops + self.evaluation_flops


class Task(ABC):
    """Turns a suite into cells, runs one cell, and renders the tables and figures of a run."""

    name: ClassVar[str]
    #: The stems of the tables :meth:`tables` may write; a study's member ``tables`` must name one of them.
    table_stems: ClassVar[tuple[str, ...]] = ()
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: Leading columns of results.csv, in order; a record's other fields follow.
    columns: ClassVar[tuple[str, ...]] = ("suite", "model", "backend", "device", "seed", "status", "error")

    def options(self, suite: "Suite") -> Any:
        """The suite's task options, validated (the loader has already checked them)."""
        return self.Options.model_validate(suite.options)

    @abstractmethod
    def plan(self, suite: "Suite") -> list[Cell]:
        """Every cell of the suite, in the order they run."""

    def work(self, suite: "Suite", cell: Cell) -> CellWork | None:
        """How much computing ``cell`` does, or None when the task cannot tell from the suite (then its
        time is estimated only from earlier runs)."""
        return None

    def check(self, suite: "Suite", reports: Path) -> None:
        """Check what the run needs beyond the suite (e.g. a stored run it reads) before anything is written."""

    def matrix_cells(self, suite: "Suite", models: list[tuple[str, dict[str, Any]]]) -> list[Cell]:
        """Each (model, params) on every backend x device x seed of the suite's matrix, model-major."""
        config = suite.resolved()
        return [
            Cell(suite.name, self.name, model, backend, device, seed, config, params)
            for model, params in models
            for backend in suite.matrix.backends
            for device in suite.matrix.devices
            for seed in suite.matrix.seeds
        ]

    def setup(self, cell: Cell) -> CellSetup:
        """Decode the cell's suite and options, and find its backend and device (the start of every ``run``)."""
        from harness.suite.schema import Suite

        suite = Suite.model_validate(cell.config)
        if not self.uses_backends:
            return CellSetup(suite, self.options(suite), None, cell.device)
        from harness.backends import get_backend

        backend = get_backend(cell.backend)
        return CellSetup(suite, self.options(suite), backend, backend.resolve_device(cell.device))

    @abstractmethod
    def run(self, cell: Cell, context: RunContext) -> CellResult:
        """Run one cell. Raising marks the cell failed; the runner records the error."""

    #: Whether cells train through a framework backend (the runner checks those are installed first).
    uses_backends: ClassVar[bool] = True
    #: Options that pick which numbers a run computes, or hold the report's numbers, without changing any
    #: number's value (e.g. the perceptron's pairs): the reproduction document judges a run whose only
    #: difference from the report's settings is in these (harness.study.settings).
    selecting_options: ClassVar[tuple[str, ...]] = ()
    #: Whether cells read the suite's dataset (the runner fetches and verifies it first).
    uses_dataset: ClassVar[bool] = True

    def summary(self, result: CellResult) -> str:
        """One line about a finished cell for the run's log."""
        return ", ".join(f"{key} {value}" for key, value in list(result.record.items())[:4])

    def tables(self, suite: "Suite", cells: list[StoredCell]) -> list[Table]:
        """The run's tables, as data, from stored results (none when no cell finished)."""
        return []

    def figures(self, suite: "Suite", cells: list[StoredCell], out_dir: Path) -> list[Path]:
        """Draw the run's figures from stored results into ``out_dir``; returns the files written."""
        return []

    def cell_figures(self, suite: "Suite", stored: StoredCell, folder: Path) -> list[Path]:
        """Draw one finished cell's own figures into ``folder`` from its stored record and artifacts;
        returns the files written ([] where they need what the store does not hold, e.g. weights)."""
        return []

    def render(self, suite: "Suite", cells: list[StoredCell], out_dir: Path, console: "Console | None") -> list[Table]:
        """Write the run's tables and figures from stored results (never retrains), redrawing the cells'
        own figures that are gone (a deleted run folder); returns the tables."""
        tables = self.tables(suite, cells)
        write_tables(tables, out_dir, console)
        self.figures(suite, cells, out_dir)
        lost = [path for stored in cells for path in self._redraw_lost_figures(suite, stored, out_dir)]
        if lost and console is not None:
            console.print(f"{len(lost)} figure(s) of the cells not redrawn: the {self.name} task draws them while a "
                          f"cell runs, from what the store does not keep; run the cells again to have them "
                          f"(first: {lost[0]})", markup=False, soft_wrap=True)
        return tables

    def _redraw_lost_figures(self, suite: "Suite", stored: StoredCell, out_dir: Path) -> list[str]:
        """Redraw a cell's recorded figures when any is missing; returns those still missing."""
        missing = [name for name in stored.result.artifacts.get("figures") or [] if not (out_dir / name).is_file()]
        if not missing or not stored.result.ok:
            return []
        folder = (out_dir / missing[0]).parent
        folder.mkdir(parents=True, exist_ok=True)
        self.cell_figures(suite, stored, folder)
        return [name for name in missing if not (out_dir / name).is_file()]
