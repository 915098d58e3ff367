"""The files a comparison reads, as schemas: a run's ``results.json`` and a baseline file.

Both are versioned (``schema_version``): a file from a newer harness is refused rather than misread.
Each is validated whole before anything reads it, so a hand-edited or truncated file is one line
naming the file and the field (``results file X: cells[2].record: field required``), never a
traceback from deep inside the comparison. Unknown keys are allowed: the files carry more than a
comparison reads (artifacts, the resolved suite), and older harnesses wrote fewer of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.compare.results import CellSummary, RunResults
from harness.errors import UserError
from harness.store import SCHEMA_VERSION as RESULTS_SCHEMA_VERSION
from harness.suite.regression_settings import RegressionSettings

BASELINE_FORMAT = "harness-baseline"
#: 2: an entry may pool several runs (``runs``, and each cell's ``run``); a version-1 file is one run.
BASELINE_SCHEMA_VERSION = 2


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Calibration(_Open):
    """``environment.calibration``: the fixed workload's timing (see harness.calibration)."""

    version: int | None = None
    seconds: float | None = Field(None, gt=0)
    samples: list[float] = Field(default_factory=list)


class Environment(_Open):
    """What the run was measured on; a comparison reads the calibration and diffs the rest."""

    calibration: Calibration | None = None


class CellIdentity(_Open):
    """``cells[].cell`` of a results.json: which cell it was."""

    model: str
    backend: str
    device: str
    seed: int
    params: dict[str, Any] = Field(default_factory=dict)


class ResultsCell(_Open):
    """One cell of a results.json, as the store writes it."""

    cell: CellIdentity
    status: str
    error: str = ""
    record: dict[str, Any]
    artifacts: dict[str, Any] = Field(default_factory=dict)


class RunConfig(_Open):
    """The resolved suite stored with the run; a comparison reads its regression settings."""

    regression: RegressionSettings = Field(default_factory=RegressionSettings)


class ResultsFile(_Open):
    """A run folder's ``results.json`` (written by :func:`harness.store.write_run_files`)."""

    schema_version: int = Field(ge=1, le=RESULTS_SCHEMA_VERSION)
    run_id: str
    suite: str
    profile: str
    config_hash: str
    created: str
    environment: Environment
    config: RunConfig
    cells: list[ResultsCell]

    def results(self) -> RunResults:
        cells = [CellSummary.from_parts(item.cell.model_dump(), item.status, item.error, item.record, item.artifacts)
                 for item in self.cells]
        return RunResults(self.suite, self.run_id, self.profile, self.config_hash, self.created,
                          self.environment.model_dump(exclude_unset=True),
                          self.config.regression.model_dump(exclude_unset=True), cells)


class BaselineCell(_Open):
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


class BaselineEntry(_Open):
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


class BaselineFile(_Open):
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


Model = TypeVar("Model", bound=BaseModel)


def load(path: Path, schema: type[Model], kind: str, newest: int, advice: str) -> Model:
    """``path`` read as JSON and validated by ``schema``; a UserError of one line naming the file and
    the first wrong field otherwise. ``kind`` names the file in messages; ``newest`` is the newest
    schema version this harness reads, ``advice`` what to do about a newer one."""
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
        raise UserError(f"{kind} {path}: {first_problem(error)}") from None


def first_problem(error: ValidationError) -> str:
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


def read_results_file(path: Path) -> RunResults:
    """A run from its ``results.json`` (or the run folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    return load(path, ResultsFile, "results file", RESULTS_SCHEMA_VERSION, "upgrade harness").results()


def read_baseline(path: Path) -> dict[str, RunResults]:
    """The suites of a baseline file, by name."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no baseline file at {path}: write one with harness baseline update suite=NAME")
    document = load(path, BaselineFile, "baseline file", BASELINE_SCHEMA_VERSION,
                    "upgrade harness or write the baseline again")
    return {name: entry.results() for name, entry in document.suites.items()}
