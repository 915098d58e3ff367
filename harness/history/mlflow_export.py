"""Stored runs as MLflow runs (``harness export mlflow``; needs the optional extra ``harness[mlflow]``).

Each harness run becomes a parent MLflow run and each of its cells a child run (MLflow's
``mlflow.parentRunId`` tag); a study run is the parent of its member suites' runs. A cell's run holds

- params: the cell's identity (model, backend, device, seed, its own parameters) and the resolved
  settings it ran with, flattened to dotted keys (``train.epochs``);
- metrics: every numeric column of its record (accuracy, parameters, FLOPs, seconds, ...) and, with
  their epoch as the step, the per-epoch history (losses, accuracies, seconds);
- tags: the environment it was measured in (``env.cpu``, ``env.git_commit``, ...) and the harness's
  run id, suite, profile and cell key, by which a second export finds what is already there and
  skips it (exporting twice does not duplicate);
- artifacts: the cell's figures.

MLflow is imported only here, inside the functions, so the rest of the harness never needs it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cells import StoredCell
from harness.compare.comparison import flatten
from harness.errors import UserError
from harness.store import ResultsStore, RunInfo

#: MLflow's limits: a param value's length, and how many params/metrics/tags one ``log_batch`` takes.
MAX_PARAM_LENGTH = 6000
MAX_BATCH = 100
TAG_PREFIX = "harness."


@dataclass
class ExportSummary:
    """What an export did: MLflow runs created, and harness runs already there (skipped)."""

    experiment: str
    created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def client_for(tracking_uri: str) -> Any:
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise UserError("export mlflow needs MLflow: pip install 'harness[mlflow]'") from None
    return MlflowClient(tracking_uri=tracking_uri)


def text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN != NaN


def cell_params(stored: StoredCell) -> dict[str, str]:
    cell = stored.cell
    params = {"model": cell.model, "backend": cell.backend, "device": cell.device, "seed": str(cell.seed),
              **{f"cell.{k}": text(v) for k, v in cell.params.items()}}
    settings = {f"settings.{k}": text(v) for k, v in flatten(cell.config).items()}
    return {k[:250]: v[:MAX_PARAM_LENGTH] for k, v in {**params, **settings}.items()}


def cell_metrics(stored: StoredCell) -> list[tuple[str, float, int]]:
    """(name, value, step): the record's numbers at step 0, the per-epoch history at its epochs."""
    metrics = [(name, float(value), 0) for name, value in stored.record.items()
               if numeric(value) and name != "seed"]
    for index, epoch in enumerate(stored.result.artifacts.get("history") or []):
        if not isinstance(epoch, dict):
            continue
        step = int(epoch.get("epoch", index + 1))
        metrics += [(f"epoch.{name}", float(value), step) for name, value in epoch.items()
                    if numeric(value) and name != "epoch"]
    return metrics


def environment_tags(environment: dict[str, Any]) -> dict[str, str]:
    return {f"env.{key}"[:250]: text(value)[:5000] for key, value in flatten(environment).items()
            if key != "calibration.samples"}


def figures(stored: StoredCell, folder: Path) -> list[Path]:
    """The cell's figure files that exist: as recorded, else by name under the run folder (a store
    merged from elsewhere records paths of another machine)."""
    found = []
    for recorded in stored.result.artifacts.get("figures") or []:
        path = Path(recorded)
        if not path.is_file():
            path = next(iter(sorted(folder.rglob(path.name))), path) if folder.is_dir() else path
        if path.is_file():
            found.append(path)
    return found


def log(client: Any, run_id: str, params: dict[str, str], metrics: list[tuple[str, float, int]],
        tags: dict[str, str]) -> None:
    from mlflow.entities import Metric, Param, RunTag

    stamp = int(time.time() * 1000)
    items: list[Any] = [Param(k, v) for k, v in params.items()]
    items += [Metric(name, value, stamp, step) for name, value, step in metrics]
    items += [RunTag(k, v) for k, v in tags.items()]
    for start in range(0, len(items), MAX_BATCH):
        chunk = items[start:start + MAX_BATCH]
        client.log_batch(run_id, metrics=[i for i in chunk if isinstance(i, Metric)],
                         params=[i for i in chunk if isinstance(i, Param)],
                         tags=[i for i in chunk if isinstance(i, RunTag)])


def already_exported(client: Any, experiment_id: str, run_id: str) -> bool:
    found = client.search_runs([experiment_id], filter_string=f"tags.`{TAG_PREFIX}run_id` = '{run_id}'",
                               max_results=1)
    return bool(found)


def export_run(client: Any, experiment_id: str, store: ResultsStore, reports: Path, run: RunInfo,
               parent: str | None, summary: ExportSummary) -> None:
    """One harness run (and, for a study, its members) as MLflow runs."""
    if already_exported(client, experiment_id, run.run_id):
        summary.skipped.append(run.run_id)
        return
    identity = {f"{TAG_PREFIX}run_id": run.run_id, f"{TAG_PREFIX}suite": run.suite,
                f"{TAG_PREFIX}profile": run.profile, f"{TAG_PREFIX}status": run.status,
                f"{TAG_PREFIX}config_hash": run.config_hash, f"{TAG_PREFIX}created": run.created}
    tags = {**identity, **environment_tags(run.environment)}
    if parent:
        tags["mlflow.parentRunId"] = parent
    top = client.create_run(experiment_id, run_name=f"{run.suite} {run.run_id}", tags=tags).info.run_id
    summary.created.append(top)
    members = run.config.get("members") if isinstance(run.config.get("members"), dict) else {}
    cells = store.cells(run.run_id)
    folder = run.folder(reports)
    for stored in cells:
        cell_tags = {**tags, "mlflow.parentRunId": top, f"{TAG_PREFIX}cell": stored.cell.key,
                     f"{TAG_PREFIX}cell_status": stored.result.status}
        child = client.create_run(experiment_id, run_name=f"{stored.cell.model} {stored.cell.backend}/"
                                  f"{stored.cell.device} seed {stored.cell.seed}", tags=cell_tags).info.run_id
        log(client, child, cell_params(stored), cell_metrics(stored), {})
        for path in figures(stored, folder):
            client.log_artifact(child, str(path), artifact_path="figures")
        client.set_terminated(child, "FINISHED" if stored.result.ok else "FAILED")
        summary.created.append(child)
    known = {r.run_id for r in store.runs()}
    for member in members.values():
        if member in known:
            export_run(client, experiment_id, store, reports, store.run(member), top, summary)
    client.set_terminated(top, {"complete": "FINISHED", "failed": "FAILED"}.get(run.status, "FINISHED"))


def export(reports: Path, tracking_uri: str, run_ids: list[str] | None = None,
           experiment: str = "harness") -> ExportSummary:
    """Export runs of the store in ``reports`` (all finished ones, or those named) to ``tracking_uri``."""
    client = client_for(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    summary = ExportSummary(experiment)
    with ResultsStore(Path(reports) / "results.db") as store:
        runs = [store.run(run_id) for run_id in run_ids] if run_ids else [
            r for r in store.runs() if r.status != "running"]
        # A study's members are exported under it, not on their own as well.
        members = {m for r in runs for m in (r.config.get("members") or {}).values()
                   if isinstance(r.config.get("members"), dict)}
        for run in runs:
            if run.run_id not in members or run_ids:
                export_run(client, experiment_id, store, Path(reports), run, None, summary)
    return summary
