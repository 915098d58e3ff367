"""The architecture-search task (report 3.2 and 4.2): sample, rank, retrain the best and the worst.

Cells, all on the suite's matrix (backend x device x seed), run in this order:

1. ``model`` cells: the suite's fixed models (the baseline), trained in full like a classify cell;
2. ``trial`` cells: every architecture :func:`harness.paper.algorithms.search_space.propose` draws from the space, trained
   for ``trial_epochs``; the record holds its validation accuracy;
3. ``retrain`` cells: for each depth, the best and the worst trial by validation accuracy, trained
   in full (the suite's epochs). A retrain cell names the trial cells of its own backend, device and
   seed in ``Cell.needs``: the executor runs it after them and hands it their records, so it picks
   from whatever trials finished, on whichever machine it runs.

Because the proposals depend only on the space, a search cut short resumes like any run: finished
cells are skipped and the rest run. Training goes through :func:`harness.tasks.training.train_and_measure`
on the named backend. Rendering writes the table in the shape of Table 3.2 / 4.4 (the report's row
of the same depth and rank beside ours), every trial's result, and a plot of the trials.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import Field, PositiveInt

from harness.paper.algorithms.search_space import (
    SearchSpace,
    Trial,
    TrialResult,
    propose,
    rank,
    trial_name,
)
from harness.cells import Cell, CellResult, RunContext, StoredCell
from harness.render import plots, tables
from harness.render.tables import Table
from harness.suite.models import StrictModel
from harness.tasks.base import Task
from harness.tasks.training import finished_frame

if TYPE_CHECKING:

    from harness.suite.schema import ModelEntry, Suite

RANKS = ("best", "worst")


class SearchReference(StrictModel):
    """A row of the report's Table 3.2 / 4.4 for one depth and rank."""

    depth: PositiveInt
    rank: Literal["best", "worst"]
    name: str = Field(description="The report's name, e.g. 'Additional Model 1'.")
    params: int | None = None
    widths: str = Field("", description="The report's width configuration.")
    test_accuracy: float | None = Field(None, description="Test accuracy, percent.")
    cpu_seconds: float | None = None
    gpu_seconds: float | None = None


class SearchOptions(StrictModel):
    """Settings of the architecture search."""

    space: SearchSpace = Field(description="What the search may propose.")
    trial_epochs: PositiveInt = Field(2, description="Epochs each trial is trained for before ranking.")
    reference: list[SearchReference] = Field(default_factory=list, description="The report's best and worst rows.")


def retrain_name(depth: int, which: str) -> str:
    return f"depth {depth} {which}"


class SearchTask(Task):
    """Report Tables 3.2 and 4.4 by search: fixed models, trials, best and worst per depth retrained."""

    name = "search"
    table_stems = ("table", "trials")
    Options = SearchOptions
    columns = ("suite", "model", "backend", "device", "seed", "phase", "depth", "params", "max_width", "configuration",
               "epochs", "val_accuracy", "test_accuracy", "train_seconds", "status", "error")

    def plan(self, suite: "Suite") -> list[Cell]:
        options = self.options(suite)
        named = [(model.name, "model") for model in suite.models]
        named += [(trial.name, "trial") for trial in propose(options.space)]
        named += [(retrain_name(depth, which), "retrain") for depth in options.space.depths for which in RANKS]
        cells = self.matrix_cells(suite, [(name, {"phase": phase}) for name, phase in named])
        trials = [cell for cell in cells if cell.params["phase"] == "trial"]

        def slot(cell: Cell) -> tuple:
            return cell.backend, cell.device, cell.seed

        return [replace(cell, needs=tuple(trial.key for trial in trials if slot(trial) == slot(cell)))
                if cell.params["phase"] == "retrain" else cell for cell in cells]

    def run(self, cell: Cell, context: RunContext) -> CellResult:
        from harness.suite.schema import ModelEntry

        setup = self.setup(cell)
        suite, options = setup.suite, setup.options
        phase = cell.params["phase"]
        extra: dict[str, Any] = {"phase": phase}
        if phase == "model":
            entry = suite.model(cell.model)
            epochs = entry.epochs or suite.train.epochs
        elif phase == "trial":
            trial = _trials(options.space)[cell.model]
            entry = ModelEntry.model_validate(trial.spec.model_dump())
            epochs = options.trial_epochs
            extra.update(trial=trial.index)
        else:
            depth, which = int(cell.model.split()[1]), cell.model.split()[2]
            picked, result = self._pick(cell, context, options, depth, which)
            entry = ModelEntry.model_validate({**picked.spec.model_dump(), "name": cell.model})
            epochs = suite.train.epochs
            extra.update(rank=which, trial=picked.index, trial_val_accuracy=result.val_accuracy)
        if context.observer is not None:
            context.observer.epochs = epochs
        record, artifacts = train_model(cell, entry, suite, epochs, context.observer)
        record.update(extra, depth=entry.depth, configuration=configuration(entry))
        return CellResult("ok", record, artifacts)

    @staticmethod
    def _trial_results(cell: Cell, context: RunContext) -> list[TrialResult]:
        """The finished trials this retrain cell needs, from the records the executor handed it."""
        records = [context.inputs[key] for key in cell.needs if key in context.inputs]
        return [TrialResult(int(record["depth"]), int(record["trial"]), record["val_accuracy"])
                for record in records if record.get("val_accuracy") is not None]

    def _pick(self, cell: Cell, context: RunContext, options: SearchOptions, depth: int,
              which: str) -> tuple[Trial, TrialResult]:
        """The best or worst finished trial of ``depth``, and its result."""
        ranked = rank(self._trial_results(cell, context))
        if depth not in ranked:
            raise RuntimeError(f"no finished trial of depth {depth} to retrain (did every trial fail?)")
        chosen = ranked[depth][RANKS.index(which)]
        return _trials(options.space)[trial_name(chosen.depth, chosen.index)], chosen

    def summary(self, result: CellResult) -> str:
        r = result.record
        picked = f" ({r['rank']}: trial {r['trial']})" if r.get("rank") else ""
        return (f"{r['phase']}{picked}: {r['configuration']}, {r['params']:,} params, "
                f"val {r['val_accuracy'] or 0:.2f}%, test {r['test_accuracy']:.2f}%, {r['train_seconds']:.1f} s")

    def tables(self, suite: "Suite", cells: list[StoredCell]) -> list[Table]:
        options = self.options(suite)
        frame = finished_frame(cells)
        if frame.empty:
            return []
        out: list[Table] = []
        final = frame[frame["phase"] != "trial"]
        if not final.empty:
            out.append(Table("table", f"{suite.title} ({suite.mirrors})", search_table(final, options), TABLE_NOTE))
        trials = frame[frame["phase"] == "trial"]
        if not trials.empty:
            out.append(Table("trials", f"{suite.title}: every trial ({options.trial_epochs} epochs each)",
                             trials_table(trials, final)))
        return out

    def figures(self, suite: "Suite", cells: list[StoredCell], out_dir: Path) -> list[Path]:
        options = self.options(suite)
        frame = finished_frame(cells)
        written: list[Path] = []
        if frame.empty:
            return written
        final = frame[frame["phase"] != "trial"]
        trials = frame[frame["phase"] == "trial"]
        if not trials.empty:
            written.append(trials_plot(trials, final, f"{suite.title}: trials by depth "
                                       f"({options.trial_epochs} epochs each, {options.space.family.upper()})",
                                       out_dir / "trials.png"))
        return written


TABLE_NOTE = ("Best and worst trial of each depth by validation accuracy, retrained for the suite's epochs; the "
              "report's model of the same depth and rank beside ours. Δ = ours − report. Report seconds: its CPU "
              "(GPU in brackets); ours: the run's device.")


_PROPOSALS: dict[str, dict[str, Trial]] = {}


def _trials(space: SearchSpace) -> dict[str, Trial]:
    """The space's trials by name, proposed once per process (every cell of a run asks)."""
    key = space.model_dump_json()
    if key not in _PROPOSALS:
        _PROPOSALS[key] = {trial.name: trial for trial in propose(space)}
    return _PROPOSALS[key]


def train_model(cell: Cell, entry: "ModelEntry", suite: "Suite", epochs: int, observer: Any) -> tuple[dict, dict]:
    """Train one model on the cell's backend and device; (record, artifacts) as the classify task makes them."""
    from harness.backends import get_backend
    from harness.tasks.training import train_and_measure

    backend = get_backend(cell.backend)
    device = backend.resolve_device(cell.device)
    record, artifacts, _ = train_and_measure(backend, entry, suite, epochs=epochs, seed=cell.seed, device=device,
                                             observer=observer)
    record["device"] = device
    return record, artifacts


def configuration(spec: Any) -> str:
    """Widths as the report writes them: '992 544' for an MLP, '192 (3x3), 96 (4x4)' for a CNN."""
    convolutions = [layer for layer in spec.layers if layer.type == "conv2d"]
    if convolutions:
        return ", ".join(f"{layer.filters} ({layer.kernel}x{layer.kernel})" for layer in convolutions)
    return " ".join(str(width) for width in spec.hidden_widths)


def search_table(final: pd.DataFrame, options: SearchOptions) -> pd.DataFrame:
    """Table 3.2 / 4.4: fixed models, then best and worst per depth, the report's row beside each."""
    references = {(ref.depth, ref.rank): ref for ref in options.reference}
    rows = []
    for _, row in final.iterrows():
        if row["phase"] == "retrain":
            ref = references.get((int(row["depth"]), row["rank"]))
            report = {"name": ref.name, "params": ref.params, "widths": ref.widths, "test": ref.test_accuracy,
                      "cpu": ref.cpu_seconds, "gpu": ref.gpu_seconds} if ref else {}
            model = f"{row['model']} (trial {int(row['trial'])})"
        else:
            report = {"name": row["model"], "params": row.get("ref_params"), "widths": "",
                      "test": row.get("ref_test_accuracy"), "cpu": row.get("ref_cpu_seconds"),
                      "gpu": row.get("ref_gpu_seconds")}
            model = row["model"]
        report = {key: (None if isinstance(value, float) and pd.isna(value) else value)
                  for key, value in report.items()}
        rows.append({
            "Model": model,
            "Params": int(row["params"]),
            "Depth": int(row["depth"]),
            "Max width": int(row["max_width"]),
            "Width configuration": row["configuration"],
            "Test acc %": row["test_accuracy"],
            "Time s": row["train_seconds"],
            "Backend": f"{row['backend']}, {row['device']}",
            "Report model": report.get("name"),
            "Report params": report.get("params"),
            "Report widths": report.get("widths"),
            "Report test %": report.get("test"),
            "Δ test": tables.difference(row["test_accuracy"], report.get("test")),
            "Report s": _seconds(report.get("cpu"), report.get("gpu")),
        })
    return pd.DataFrame(rows, dtype=object)


def _seconds(cpu: float | None, gpu: float | None) -> str | None:
    if cpu is None and gpu is None:
        return None
    return f"{cpu:,.1f} ({gpu:,.1f})" if cpu is not None and gpu is not None else f"{cpu or gpu:,.1f}"


def trials_table(trials: pd.DataFrame, final: pd.DataFrame) -> pd.DataFrame:
    """Every trial with its validation accuracy, and whether it was retrained as best or worst."""
    picked: dict[tuple, list[str]] = {}
    for _, row in final[final["phase"] == "retrain"].iterrows():
        picked.setdefault((row["backend"], row["device"], row["seed"], int(row["depth"]), int(row["trial"])),
                          []).append(row["rank"])
    out = pd.DataFrame({
        "Trial": trials["model"],
        "Depth": trials["depth"].astype(int),
        "Width configuration": trials["configuration"],
        "Params": trials["params"].astype(int),
        "Val acc %": trials["val_accuracy"],
        "Test acc %": trials["test_accuracy"],
        "Time s": trials["train_seconds"],
        "Retrained as": [", ".join(picked.get((r.backend, r.device, r.seed, int(r.depth), int(r.trial)), []))
                         for r in trials.itertuples()],
    })
    if trials["backend"].nunique() > 1 or trials["device"].nunique() > 1:
        out.insert(1, "Backend", trials["backend"] + ", " + trials["device"])
    return out.astype(object)


def trials_plot(trials: pd.DataFrame, final: pd.DataFrame, title: str, path: Path) -> Path:
    """Validation accuracy of every trial against its parameters, one colour per depth."""
    with plots.plt.rc_context(plots.STYLE):
        figure, axis = plots.plt.subplots(figsize=(7.5, 4.6))
        for depth, group in trials.groupby("depth"):
            axis.plot(group["params"], group["val_accuracy"], "o", alpha=0.8, label=f"depth {int(depth)}")
        retrained = final[final["phase"] == "retrain"]
        for _, row in retrained.iterrows():
            match = trials[(trials["depth"] == row["depth"]) & (trials["trial"] == row["trial"])]
            if not match.empty:
                axis.annotate(row["rank"], (match["params"].iloc[0], match["val_accuracy"].iloc[0]),
                              textcoords="offset points", xytext=(4, 4), fontsize=7)
        axis.set_xscale("log")
        axis.set_xlabel("parameters")
        axis.set_ylabel("validation accuracy (%)")
        axis.set_title(title)
        axis.legend()
        return plots.save(figure, path)


TASK = SearchTask()
