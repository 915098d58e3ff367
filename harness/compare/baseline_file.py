"""A baseline file, ``reports/baselines/<device-kind>-<profile>.json``, as a schema, and its reader.

It is versioned (``schema_version``): a file from a newer harness is refused rather than misread.
It is validated whole before anything reads it, so a hand-edited or truncated file is one line
naming the file and the field (``baseline file X: suites.demo.cells: field required``), never a
traceback from deep inside the comparison. Unknown keys are allowed: older harnesses wrote fewer of
them. (A run's ``results.json`` is read by :func:`harness.store.read_run_file`, the same way.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.compare.results import CellSummary, RunResults
from harness.errors import UserError
from harness.store.files import Environment, read_json_file
from harness.suite.models import OpenModel
from harness.suite.regression_settings import RegressionSettings

BASELINE_FORMAT = "harness-baseline"
#: 2: an entry may pool several runs (``runs``, and each cell's ``run``); a version-1 file is one run.
BASELINE_SCHEMA_VERSION = 2


class BaselineCell(OpenModel):
    """One cell of a baseline entry: identity, outcome, record and repeated samples."""

    model: str
    backend: str
    device: str
    seed: int
    params: dict[str, Any] = Field(default_factory=dict)
    status: str
    error: str = ""
    record: dict[str, Any]
    samples: dict[str, list[float]] = Field(default_factory=dict)
    calibration: float | None = Field(None, gt=0, description="Seconds of the calibration around this cell.")
    run: str = Field("", description="The run that measured this cell, in an entry pooled from several runs.")


class BaselineEntry(OpenModel):
    """One suite of a baseline file: the run it was taken from (or, in ``runs``, the runs it pools; the
    newest gives ``run_id`` and the environment), reduced to what a comparison reads."""

    run_id: str
    suite: str
    profile: str
    config_hash: str
    created: str
    environment: Environment = Field(default_factory=Environment)
    regression: RegressionSettings = Field(default_factory=RegressionSettings)
    cells: list[BaselineCell]
    runs: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cells_of_pooled_runs(self) -> "BaselineEntry":
        if len(set(self.runs)) != len(self.runs):
            raise ValueError("runs names a run twice")
        unknown = sorted({cell.run for cell in self.cells if cell.run} - set(self.runs))
        if unknown:
            raise ValueError(f"cells measured by runs the entry does not pool: {', '.join(unknown)}")
        return self

    def results(self) -> RunResults:
        cells = [CellSummary(c.model, c.backend, c.device, c.seed, c.params, c.status, c.error, c.record, c.samples,
                             c.calibration, c.run)
                 for c in self.cells]
        return RunResults(self.suite, self.run_id, self.profile, self.config_hash, self.created,
                          self.environment.model_dump(exclude_unset=True),
                          self.regression.model_dump(exclude_unset=True), cells, tuple(self.runs))


class BaselineFile(OpenModel):
    """A committed baseline file, ``reports/baselines/<device-kind>-<profile>.json``."""

    format: Literal["harness-baseline"]
    schema_version: int = Field(ge=1, le=BASELINE_SCHEMA_VERSION)
    suites: dict[str, BaselineEntry]

    @field_validator("suites")
    @classmethod
    def _named_by_suite(cls, suites: dict[str, BaselineEntry]) -> dict[str, BaselineEntry]:
        wrong = [name for name, entry in suites.items() if entry.suite != name]
        if wrong:
            raise ValueError(f"entries filed under another suite's name: {', '.join(wrong)}")
        return suites


def read_baseline(path: Path) -> dict[str, RunResults]:
    """The suites of a baseline file, by name."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no baseline file at {path}: write one with harness baseline update suite=NAME")
    document = read_json_file(path, BaselineFile, "baseline file", BASELINE_SCHEMA_VERSION,
                              "upgrade harness or write the baseline again")
    return {name: entry.results() for name, entry in document.suites.items()}
