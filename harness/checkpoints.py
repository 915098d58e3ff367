"""Trained models kept by earlier runs: find one, check it is there, load it on a backend.

A classification cell run with ``options.save_weights=true`` keeps its weights in its cell folder,
in each framework's safe format (a torch ``state_dict``, a Keras ``.keras`` file), and the run keeps
the resolved suite, so the spec is known too. ``from_run`` names such a run by its id (looked up in
the reports store) or by its folder; everything that can be missing is found by :func:`find`,
before anything runs, and reported as a one-line UserError that says what to do.

    >>> stored = find("20240101-120000-abc123", "CNN Baseline Model", "torch", reports=Path("reports"))
    >>> model = load(stored, backend, device="cpu")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UserError

if TYPE_CHECKING:
    from harness.backends.base import Backend
    from harness.cells import StoredCell
    from harness.store import RunInfo
    from harness.suite.schema import ModelEntry


@dataclass(frozen=True)
class StoredModel:
    """A trained model of an earlier run: its spec, its weights file and what the run measured."""

    run_id: str
    spec: "ModelEntry"
    weights: Path
    record: dict[str, Any]


def open_run(from_run: str, reports: Path) -> tuple["RunInfo", list["StoredCell"], Path]:
    """The run ``from_run`` names (a run folder, its results.json, or a run id in ``reports``), its
    cells and its folder."""
    from harness.store import ResultsStore, read_run_file

    path = Path(from_run)
    if path.is_dir() or path.suffix == ".json":
        run, cells = read_run_file(path)
        return run, cells, path if path.is_dir() else path.parent
    database = reports / "results.db"
    if not database.exists():
        raise UserError(f"from_run={from_run}: no results store at {database} "
                        "(give a run folder instead, or set HARNESS_REPORTS)")
    with ResultsStore(database) as store:
        try:
            run = store.run(from_run)
        except UserError as error:
            raise UserError(f"from_run={from_run}: {error} (from_run also takes a run folder)") from None
        return run, store.cells(run.run_id), run.folder(reports)


def find(from_run: str, model: str, backend: str, *, reports: Path, seed: int | None = None) -> StoredModel:
    """The saved weights of ``model`` trained on ``backend`` in run ``from_run`` (the cell of ``seed``
    where there is one); a UserError if the run, the cell or the file is missing."""
    from harness.suite.load import validate_suite

    run, cells, folder = open_run(from_run, reports)
    suite = validate_suite(run.config, f"run {run.run_id}")  # the stored settings, as the run used them
    if suite.task != "classify":
        raise UserError(f"from_run={from_run}: run of suite {run.suite!r} ({suite.task}) holds no trained classifier")
    spec = suite.model(model)
    finished = [s for s in cells if s.cell.model == model and s.cell.backend == backend and s.result.ok]
    if not finished:
        trained = sorted({f"{s.cell.model} ({s.cell.backend})" for s in cells if s.result.ok}) or ["nothing"]
        raise UserError(f"from_run={from_run}: no finished cell of {model!r} on backend {backend}; "
                        f"the run trained: {', '.join(trained)}")
    chosen = next((s for s in finished if s.cell.seed == seed), finished[0])
    if "weights" not in chosen.result.artifacts:
        raise UserError(f"from_run={from_run}: {model!r} ({backend}) was trained without keeping its weights; "
                        f"run suite {run.suite} again with options.save_weights=true")
    weights = locate(Path(chosen.result.artifacts["weights"]), folder)
    return StoredModel(run.run_id, spec, weights, chosen.result.record)


def locate(recorded: Path, run_folder: Path) -> Path:
    """The weights file: where the run wrote it, else at the same place under the run's folder now
    (a reports folder may have moved, or been given relative to another directory)."""
    if recorded.is_file():
        return recorded
    moved = run_folder / "cells" / recorded.parent.name / recorded.name
    if moved.is_file():
        return moved
    raise UserError(f"checkpoint {recorded} not found (nor at {moved})")


def load(stored: StoredModel, backend: "Backend", *, device: str) -> Any:
    """The stored model on ``backend``; the backend's UserError if the file does not fit the spec."""
    return backend.load(stored.spec, stored.weights, device=device)
