"""The perceptron task (report Task 2): one perceptron per digit pair, and an exact separability check.

A cell is one seed x device (the suite's matrix): it trains every perceptron of the suite together,
vectorised (:mod:`harness.paper.algorithms.perceptron`: the table pairs at the suite's learning rate and
the learning-curve pairs at each curve rate), on every training image of the two digits (the training
pool of ``harness.data.split``; a validation share, if the suite sets one, is left unused), and
measures train and test accuracy. It then decides by linear programming whether each table pair's
training set is linearly separable (:mod:`harness.paper.algorithms.separability`, cached per data
hash; in worker processes the cell starts and stops itself), so the perceptron's verdict
("converged") can be checked against the truth, and so can the report's. Nothing outlives the cell: a
run killed part-way runs the whole cell again.

The cell keeps each perceptron (pair x learning rate) as a unit of its own (the cell's ``units``
artifact, model ``pair a-b``, the learning rate as a parameter): :func:`harness.cells.units` turns them
back into one record per pair, which the tables, figures, claims and comparisons read.
Rendering writes Table 2.1 mirrored with the report's numbers, a table of every pair with both
verdicts and every disagreement flagged, the learning curves (Fig. 2.2, 2.4) and the weights of one
pair as a 28x28 image (Fig. 2.3).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from harness.threads import blas_threads
from harness.cells import UNITS, Cell, CellResult, RunContext, StoredCell, units
from harness.errors import UserError
from harness.render import plots, tables
from harness.render.tables import Table
from harness.suite.models import StrictModel
from harness.tasks.base import Task
from harness.tasks.training import data_splits, suite_splits

if TYPE_CHECKING:

    from harness.paper.algorithms.perceptron import PerceptronResult
    from harness.paper.algorithms.separability import LogisticRoute, SeparabilityVerdict
    from harness.paper.algorithms.verdict_pool import HeadStart
    from harness.suite.schema import DataSettings, Suite

Pair = tuple[int, int]
ALL_PAIRS: list[Pair] = list(combinations(range(10), 2))


class TableEntry(StrictModel):
    """One column of the report's Table 2.1."""

    pair: Pair
    test_accuracy: float | None = Field(None, description="Test accuracy, percent.")
    iterations: int | None = Field(None, description="Iterations as the report counts them (cap + 1 at the cap).")
    seconds: float | None = Field(None, description="Training seconds on the report's CPU.")


class ListedPair(StrictModel):
    """A pair in the report's list of linearly separable pairs."""

    pair: Pair
    iterations: int | None = None
    seconds: float | None = None


def _check_pair(pair: Pair) -> Pair:
    if pair[0] == pair[1] or not all(0 <= digit <= 9 for digit in pair):
        raise ValueError(f"a pair is two different digits 0-9, got {list(pair)}")
    return pair


class PerceptronOptions(StrictModel):
    """Settings of the perceptron task."""

    pairs: list[Pair] | Literal["all"] = Field("all", description="Digit pairs [a, b] (a is -1, b is +1), or 'all' 45.")
    learning_rate: float = Field(0.08, gt=0.0, description="Learning rate of the table cells.")
    max_iterations: int = Field(1000, ge=1, description="Iteration cap (updates).")
    threshold: float = Field(0.001, ge=0.0, description="Stop once the loss mean|f - y| is at or below this.")
    init_std: float = Field(0.0, ge=0.0, description="Std of the initial weights; 0 = zeros (then the learning "
                                                      "rate changes no prediction).")
    curve_pairs: list[Pair] = Field([(0, 1), (2, 3)], description="Pairs whose learning curves are drawn.")
    curve_learning_rates: list[float] = Field([0.004, 0.08], description="Learning rates of the curves.")
    weights_pair: Pair | None = Field((0, 1), description="Pair whose weights are drawn as an image (Fig. 2.3).")
    separability: bool = Field(True, description="Decide each table pair's separability by linear programming.")
    lp_time_limit: float = Field(120.0, gt=0.0, description="Seconds per LP form and pair; beyond: 'undecided'.")
    table: list[TableEntry] = Field(default_factory=list, description="The report's Table 2.1.")
    report_separable: list[ListedPair] = Field(default_factory=list, description="The report's separable pairs.")

    @field_validator("curve_learning_rates")
    @classmethod
    def _positive(cls, rates: list[float]) -> list[float]:
        if any(rate <= 0 for rate in rates):
            raise ValueError(f"learning rates must be positive, got {rates}")
        return rates

    @model_validator(mode="after")
    def _valid_pairs(self) -> "PerceptronOptions":
        for pair in [*self.pair_list, *self.curve_pairs, *([self.weights_pair] if self.weights_pair else [])]:
            _check_pair(pair)
        if len(set(self.pair_list)) != len(self.pair_list):
            raise ValueError("pairs are listed twice")
        return self

    @property
    def pair_list(self) -> list[Pair]:
        return ALL_PAIRS if self.pairs == "all" else [tuple(pair) for pair in self.pairs]

    def report_verdict(self, pair: Pair) -> str | None:
        """What the report says: separable if listed as such, inseparable if its table shows the cap."""
        if any(tuple(entry.pair) == pair for entry in self.report_separable):
            return "separable"
        for entry in self.table:
            if tuple(entry.pair) == pair and entry.iterations is not None:
                return "inseparable" if entry.iterations > self.max_iterations else "separable"
        return None


def pair_name(pair: Pair) -> str:
    return f"pair {pair[0]}-{pair[1]}"


def parse_pair(model: str) -> Pair:
    first, second = model.removeprefix("pair ").split("-")
    return int(first), int(second)


def record_pair(record: dict[str, Any]) -> Pair:
    """The pair of a perceptron's record (its ``pair`` column reads "a,b")."""
    first, second = record["pair"].split(",")
    return int(first), int(second)


MODEL = "digit pairs"
"""The model name of every cell: one cell per seed and device trains every perceptron of the suite."""

def planned_runs(options: PerceptronOptions) -> list[tuple[Pair, float]]:
    """Every (pair, learning rate) a cell trains: the table pairs at the table's rate, then the curve pairs at
    each curve rate (a curve at the table's rate is the table's run)."""
    wanted = [(pair, options.learning_rate) for pair in options.pair_list]
    wanted += [(tuple(pair), rate) for pair in options.curve_pairs for rate in options.curve_learning_rates]
    return list(dict.fromkeys(wanted))


@dataclass(frozen=True)
class Training:
    """Every perceptron of a cell, trained together, and the seconds of each training of the batch."""

    results: dict[tuple[Pair, float], "PerceptronResult"]
    batch_seconds: list[float]
    """Wall-clock seconds of :func:`harness.paper.algorithms.perceptron.train_pairs` (data preparation
    included), one entry per repeat."""
    seconds: dict[tuple[Pair, float], list[float]]
    """Per run, its share of the joint loop in each repeat."""

    @property
    def repeated(self) -> bool:
        return len(self.batch_seconds) > 1


def train_all(suite: "Suite", options: PerceptronOptions, splits: Any, seed: int, device: str,
              routes: "HeadStart | None") -> Training:
    """Every perceptron of the suite at once (:func:`harness.paper.algorithms.perceptron.train_pairs`: one
    pass over the data per update serves every pair and learning rate), on one thread; ``routes``, the
    head start working on the other cores meanwhile, is stopped when the training ends.

    Repeats (the suite's ``repeats``) train the same batch again only to time it: training from a fixed
    start is deterministic, so the first training's results stand for all.
    """
    from harness.paper.algorithms import perceptron

    wanted = planned_runs(options)
    runs = [perceptron.Run(pair, rate, options.init_std, seed) for pair, rate in wanted]
    trainings, batch_seconds = [], []
    try:
        for _ in range(suite.repeats):
            start = time.perf_counter()
            trainings.append(perceptron.train_pairs(splits.x_train, splits.y_train, runs,
                                                    max_iterations=options.max_iterations,
                                                    threshold=options.threshold, device=device))
            batch_seconds.append(time.perf_counter() - start)
    finally:
        if routes is not None:
            routes.stop(now=len(trainings) < suite.repeats)  # interrupted: end the workers too
    return Training(dict(zip(wanted, trainings[0])), batch_seconds,
                    {run: [training[index].seconds for training in trainings] for index, run in enumerate(wanted)})


def head_start(suite: "Suite", options: PerceptronOptions) -> "HeadStart | None":
    """Worker processes that work out the logistic routes of the table pairs' verdicts while the batch trains
    on one thread, one per other thread the run may use; None where there is no other thread or nothing to decide."""
    from harness.paper.algorithms.verdict_pool import HeadStart
    from harness.threads import framework_threads

    workers = framework_threads() - 1
    if not options.separability or workers < 1 or not options.pair_list:
        return None
    return HeadStart(functools.partial(training_set, suite.data), options.pair_list, workers, options.lp_time_limit)


def training_set(settings: "DataSettings") -> tuple[np.ndarray, np.ndarray]:
    """The training images and labels of a suite's data settings (what a head-start worker loads)."""
    splits = data_splits(settings)
    return splits.x_train, splits.y_train


@dataclass(frozen=True)
class Decided:
    """A table pair's separability verdict, and how it was reached."""

    verdict: "SeparabilityVerdict"
    workers: int
    """The processes that decided the cell's verdicts side by side (1: one by one in the cell's own)."""
    ahead_seconds: float
    """Seconds of its logistic route worked out by the head start while the batch trained (0: none)."""


def verdict_arguments(suite: "Suite", options: PerceptronOptions, result: "PerceptronResult", splits: Any,
                      pair: Pair, route: "LogisticRoute | None") -> tuple[tuple, dict[str, Any]]:
    """``decide_cached``'s arguments for ``pair``'s training set, given its perceptron ``result`` (and the
    logistic ``route``, where the head start worked it out)."""
    from harness.paper.algorithms.perceptron import pair_data
    from harness.paper.algorithms.separability import cache_dir

    rows, signs = pair_data(splits.x_train, splits.y_train, pair)
    # The perceptron's own hyperplane is checked first (a certificate when it separates every sample, so
    # no LP runs); one that converged starts the correcting LP, then the logistic route and the cutting
    # plane (harness.paper.algorithms.separability.decide). Then the full forms, the one that proves the
    # likely answer first: the other may spend its whole limit.
    order = ("direct", "hull") if result.converged else ("hull", "direct")
    label = f"{suite.data.dataset} {pair[0]},{pair[1]} ({len(rows)} samples)"
    return (rows, signs), {"time_limit": options.lp_time_limit, "order": order, "label": label, "folder": cache_dir(),
                           "hyperplane": result.hyperplane, "separating": result.separating,
                           "nearly": result.converged, "route": route}


def separability_verdicts(suite: "Suite", options: PerceptronOptions, splits: Any, training: Training,
                          routes: "HeadStart | None") -> dict[Pair, Decided]:
    """The separability verdict of every table pair (none without ``options.separability``).

    Decided in worker processes, one per thread the run may use (a :class:`VerdictPool` this cell starts
    and closes, also when interrupted), in table order; on one thread, one by one in this process.
    """
    from harness.paper.algorithms.perceptron import torch_threads
    from harness.paper.algorithms.separability import decide_cached
    from harness.paper.algorithms.verdict_pool import VerdictPool
    from harness.threads import framework_threads

    pairs = options.pair_list if options.separability else []
    ahead: dict[Pair, float] = {}

    def arguments(pair: Pair) -> tuple[tuple, dict[str, Any]]:
        route = routes.route(pair) if routes is not None else None
        if route is not None:
            ahead[pair] = sum(attempt.seconds for attempt in route.attempts)
        return verdict_arguments(suite, options, training.results[(pair, options.learning_rate)], splits, pair, route)

    workers = min(framework_threads(), len(pairs))
    verdicts: dict[Pair, "SeparabilityVerdict"] = {}
    if workers < 2:
        workers = 1
        for pair in pairs:
            args, kwargs = arguments(pair)
            with torch_threads(1), blas_threads(1):  # small products: one thread, robust to a busy neighbour
                verdicts[pair] = decide_cached(*args, **kwargs)
    else:
        pool = VerdictPool([(pair, functools.partial(arguments, pair)) for pair in pairs], workers)
        try:
            verdicts = {pair: pool.verdict(pair) for pair in pairs}
        finally:
            pool.close(stop=True)  # closed already once every verdict is out; else (Ctrl-C, an error) ends the workers
    return {pair: Decided(verdicts[pair], workers, ahead.get(pair, 0.0)) for pair in pairs}


def separability_columns(decided: Decided, pair: Pair, converged: bool, suite: "Suite",
                         options: PerceptronOptions) -> dict[str, Any]:
    """A table pair's LP columns, with its disagreements: the perceptron's verdict or the report's against the LP's."""
    verdict = decided.verdict
    lp = verdict.verdict
    flags = []
    if lp != "undecided":
        if converged != (lp == "separable"):
            flags.append("perceptron " + ("converged" if converged else "hit the cap"))
        report = options.report_verdict(pair)
        # The report's verdicts are about the whole training set; a subset may well be separable.
        if report is not None and report != lp and suite.data.train_samples is None:
            flags.append(f"report says {report}")
    return {"lp_verdict": lp, "lp_form": verdict.form, "lp_seconds": verdict.seconds, "lp_cached": verdict.cached,
            "lp_certificate": verdict.certificate, "lp_check_seconds": verdict.check_seconds,
            "lp_workers": decided.workers,
            "lp_ahead_seconds": 0.0 if verdict.cached else round(decided.ahead_seconds, 3),
            "disagreement": "; ".join(flags)}


def pair_entry(pair: Pair, rate: float, training: Training, splits: Any, device: str, suite: "Suite",
               options: PerceptronOptions, decided: Decided | None) -> dict[str, Any]:
    """One perceptron of a cell as the cell keeps it: its ``record`` (the columns of its table row) beside
    its losses, weights and bias (and its verdict and timings, where it has them)."""
    from harness.paper.algorithms import perceptron

    result = training.results[(pair, rate)]
    rows, signs = perceptron.pair_data(splits.x_train, splits.y_train, pair)
    test_rows, test_signs = perceptron.pair_data(splits.x_test, splits.y_test, pair)
    predicted = perceptron.predict(result.weights, result.bias, rows)
    record: dict[str, Any] = {
        "device": device,
        "pair": f"{pair[0]},{pair[1]}",
        "learning_rate": rate,
        "init_std": options.init_std,
        "max_iterations": options.max_iterations,
        "threshold": options.threshold,
        "train_samples": len(rows),
        "test_samples": len(test_rows),
        "converged": result.converged,
        "iterations": result.iterations,
        "seconds": result.seconds,
        "kernel": result.kernel,
        "batch_runs": len(training.results),
        "batch_seconds": training.batch_seconds[0],
        "final_loss": result.final_loss,
        "train_errors": int(np.sum(predicted != signs)),
        "train_accuracy": 100.0 * float(np.mean(predicted == signs)),
        "test_accuracy": 100.0 * perceptron.accuracy(result.weights, result.bias, test_rows, test_signs),
        "report_verdict": options.report_verdict(pair),
    }
    entry: dict[str, Any] = {"losses": result.losses, "weights": result.weights.tolist(), "bias": result.bias}
    if training.repeated:
        entry["timings"] = {"seconds": training.seconds[(pair, rate)], "batch_seconds": training.batch_seconds}
        record.update(seconds=float(np.median(training.seconds[(pair, rate)])),
                      batch_seconds=float(np.median(training.batch_seconds)))
    if decided is not None and rate == options.learning_rate:
        entry["separability"] = decided.verdict.as_dict()
        record.update(separability_columns(decided, pair, result.converged, suite, options))
    return {"model": pair_name(pair), "params": {"learning_rate": rate}, "record": record, **entry}


def cell_record(entries: list[dict[str, Any]], training: Training, device: str,
                options: PerceptronOptions) -> dict[str, Any]:
    """A cell's own row of ``results.csv``: the batch's seconds and how its table pairs came out."""
    table = [entry["record"] for entry in entries if entry["record"]["learning_rate"] == options.learning_rate
             and record_pair(entry["record"]) in options.pair_list]
    record: dict[str, Any] = {
        "device": device,
        "pairs": len(table),
        "runs": len(training.results),
        "seconds": float(np.median(training.batch_seconds)),
        "kernel": ", ".join(sorted({result.kernel for result in training.results.values()})),
        "converged": sum(bool(row["converged"]) for row in table),
    }
    if options.separability:
        verdicts = [row.get("lp_verdict") for row in table]
        record.update({name: verdicts.count(name) for name in ("separable", "inseparable", "undecided")})
        record["disagreements"] = sum(bool(row.get("disagreement")) for row in table)
    return record


class PerceptronTask(Task):
    """Report Task 2: Table 2.1, Fig. 2.2-2.4, and the separable pairs checked by LP."""

    name = "perceptron"
    table_stems = ("table", "pairs")
    Options = PerceptronOptions
    selecting_options = ("pairs", "curve_pairs", "curve_learning_rates", "weights_pair", "separability",
                         "lp_time_limit", "table", "report_separable")
    columns = ("suite", "model", "device", "seed", "pairs", "runs", "seconds", "converged", "separable",
               "inseparable", "undecided", "disagreements", "status", "error")

    def plan(self, suite: "Suite") -> list[Cell]:
        if suite.matrix.backends != ["torch"]:
            raise UserError(f"suite {suite.name}: the perceptron runs on torch only; set matrix.backends = ['torch']")
        return self.matrix_cells(suite, [(MODEL, {})])

    def run(self, cell: Cell, context: RunContext) -> CellResult:
        setup = self.setup(cell)
        suite, options, device = setup.suite, setup.options, setup.device
        splits = suite_splits(suite)
        routes = head_start(suite, options)
        try:
            training = train_all(suite, options, splits, cell.seed, device, routes)
            verdicts = separability_verdicts(suite, options, splits, training, routes)
        except BaseException:
            if routes is not None:
                routes.stop(now=True)  # no worker outlives the cell
            raise
        entries = [pair_entry(pair, rate, training, splits, device, suite, options, verdicts.get(pair))
                   for pair, rate in training.results]
        artifacts: dict[str, Any] = {UNITS: entries}
        if training.repeated:
            artifacts["timings"] = {"seconds": training.batch_seconds}
        return CellResult("ok", cell_record(entries, training, device, options), artifacts)

    def summary(self, result: CellResult) -> str:
        r = result.record
        lp = (f"; LP: {r['separable']} separable, {r['inseparable']} inseparable, {r['undecided']} undecided"
              if "separable" in r else "")
        return (f"{r['runs']} perceptrons in {r['seconds']:.2f} s ({r['kernel']} products); "
                f"{r['converged']} of {r['pairs']} table pairs converged{lp}")

    def tables(self, suite: "Suite", cells: list[StoredCell]) -> list[Table]:
        options = self.options(suite)
        frame = records_frame(units(cells), options)
        if frame.empty:
            return []
        main = frame[frame["table_cell"]]
        total = float(main["seconds"].sum())
        timing = (f"Perceptron time over the {len(main)} table cells: {total:.1f} s in all "
                  f"(learning rate {options.learning_rate}, cap {options.max_iterations}, "
                  f"threshold {options.threshold}). {phase_times(main)}")
        out: list[Table] = []
        if options.table:
            out.append(Table("table", f"{suite.title} ({suite.mirrors})", table_2_1(main, options),
                             TABLE_NOTE + " " + timing))
        out.append(Table("pairs", f"{suite.title}: every pair, perceptron vs linear programming", pairs_table(main),
                         verdict_summary(main, options) + "\n\n" + timing + " " + LP_NOTE))
        return out

    def figures(self, suite: "Suite", cells: list[StoredCell], out_dir: Path) -> list[Path]:
        options = self.options(suite)
        pairs = units(cells)
        written: list[Path] = []
        curves = {tuple(p) for p in options.curve_pairs}
        curve_cells = [s for s in pairs if parse_pair(s.cell.model) in curves]
        if curve_cells:
            written.append(learning_curves(curve_cells, options, suite.title, out_dir / "learning_curves.png"))
        weights_cell = next((s for s in pairs if options.weights_pair
                             and parse_pair(s.cell.model) == tuple(options.weights_pair)
                             and s.cell.params["learning_rate"] == options.learning_rate), None)
        if weights_cell is not None:
            written.append(weights_image(weights_cell, suite.title, out_dir / "weights.png"))
        return written


TABLE_NOTE = ("Δ = ours − report. Iterations are weight updates: a run that hits the cap shows the cap (the report "
              "shows cap + 1). Report seconds: its CPU; ours: the run's device.")


def phase_times(main: pd.DataFrame) -> str:
    """This run's seconds per phase: perceptron, certificate checks, LP (cached verdicts cost none here)."""
    if "batch_seconds" in main and main["batch_seconds"].notna().any():
        # One batch per seed and device trains every pair; its time includes preparing the data.
        batches = main.dropna(subset=["batch_seconds"]).drop_duplicates(subset=["seed", "device"])
        perceptron = float(batches["batch_seconds"].sum())
        kernels = ", ".join(sorted(set(main["kernel"].dropna()))) if "kernel" in main else ""
        how = (f"{int(batches['batch_runs'].sum())} perceptrons trained together"
               + (f", {kernels} products" if kernels else ""))
    else:
        perceptron, how = float(main["seconds"].sum()), "pair by pair"
    parts = [f"Time per phase: perceptron {perceptron:.1f} s ({how})"]
    if "lp_verdict" in main and main["lp_verdict"].notna().any():
        fresh = main[main["lp_verdict"].notna() & ~main.get("lp_cached", pd.Series(False, index=main.index))
                     .fillna(False).astype(bool)]
        checks = float(fresh["lp_check_seconds"].fillna(0).sum()) if "lp_check_seconds" in fresh else 0.0
        solver = float(fresh["lp_seconds"].fillna(0).sum()) - checks
        by_perceptron = int((fresh["lp_form"] == "perceptron").sum())
        cached = int(main["lp_verdict"].notna().sum()) - len(fresh)
        workers = int(fresh["lp_workers"].fillna(1).max()) if "lp_workers" in fresh and len(fresh) else 1
        ahead = float(fresh["lp_ahead_seconds"].fillna(0).sum()) if "lp_ahead_seconds" in fresh else 0.0
        parts.append(f"certificate checks {checks:.1f} s; LP {solver:.1f} s"
                     + (f" (summed over {workers} worker processes)" if workers > 1 else "")
                     + (f", {ahead:.1f} s of it while the perceptrons trained" if ahead else "")
                     + f" ({by_perceptron} of {len(fresh)} verdicts certified by the perceptron's hyperplane without an LP"
                     + (f", {cached} from the cache" if cached else "") + ")")
    return "; ".join(parts) + "."


LP_NOTE = ("LP form \"perceptron\": the perceptron's hyperplane (or, for one that converged with training errors "
           "left, the one its continued updates reached with none) separates every sample, checked in float64: no LP "
           "ran. \"logistic\": a logistic regression stopped at its first hyperplane that separates every sample, "
           "checked the same way: no LP either. \"hull, closest samples\": the LP finding a point of both classes' "
           "convex hulls among the samples closest to the logistic hyperplane (inseparable). \"cutting plane\": LPs "
           "on a growing working set, every answer checked on all samples. "
           "LP s: seconds of the checks and solves that produced the verdict; a cached verdict keeps those of the "
           "machine that first solved it. Converged means loss <= threshold, which allows a few training errors.")


def records_frame(cells: list[StoredCell], options: PerceptronOptions) -> pd.DataFrame:
    """Finished cells' records, with whether each is a table cell (table pair at the table's rate)."""
    rows = []
    for stored in cells:
        if not stored.result.ok:
            continue
        pair = parse_pair(stored.cell.model)
        table_cell = pair in options.pair_list and stored.record["learning_rate"] == options.learning_rate
        rows.append({**stored.record, "pair_key": pair, "table_cell": table_cell})
    return pd.DataFrame(rows)


def _value(row: pd.Series, column: str) -> Any:
    value = row.get(column)
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def table_2_1(main: pd.DataFrame, options: PerceptronOptions) -> pd.DataFrame:
    """The report's Table 2.1, its pairs in its order, ours beside each of its numbers."""
    rows = []
    for entry in options.table:
        pair = tuple(entry.pair)
        for _, row in main[main["pair_key"] == pair].iterrows():
            iterations = int(row["iterations"])
            rows.append({
                "Pair": f"{pair[0]},{pair[1]}",
                "Test acc %": row["test_accuracy"],
                "Report %": entry.test_accuracy,
                "Δ acc": tables.difference(row["test_accuracy"], entry.test_accuracy),
                "Iterations": iterations,
                "Report it.": entry.iterations,
                "Seconds": row["seconds"],
                "Report s": entry.seconds,
                "Converged": bool(row["converged"]),
                "LP verdict": _value(row, "lp_verdict"),
            })
    return pd.DataFrame(rows, dtype=object)  # object keeps iteration counts as integers


def pairs_table(main: pd.DataFrame) -> pd.DataFrame:
    """Every table pair: the perceptron's outcome, the LP's verdict and any disagreement."""
    out = pd.DataFrame({
        "Pair": main["pair"],
        "Converged": main["converged"].astype(bool),
        "Iterations": main["iterations"].astype(int),
        "Seconds": main["seconds"],
        "Train acc %": main["train_accuracy"],
        "Test acc %": main["test_accuracy"],
        "Train errors": main["train_errors"].astype(int),
        "LP verdict": main.get("lp_verdict"),
        "LP form": main.get("lp_form"),
        "LP s": main.get("lp_seconds"),
        "LP cached": main.get("lp_cached"),
        "Report says": main["report_verdict"],
        "Disagreement": main.get("disagreement"),
    })
    if main["device"].nunique() > 1:
        out.insert(1, "Device", main["device"])
    if main["seed"].nunique() > 1:
        out.insert(1, "Seed", main["seed"])
    return out.astype(object).where(out.notna(), None)


def verdict_summary(main: pd.DataFrame, options: PerceptronOptions) -> str:
    """The lists the report gives, and ours: which pairs are separable by each account."""

    def listed(mask: pd.Series) -> str:
        pairs = sorted(set(main.loc[mask, "pair"]))
        return ", ".join(f"({p})" for p in pairs) or "none"

    lp = main.get("lp_verdict", pd.Series(None, index=main.index))
    report = [f"({e.pair[0]},{e.pair[1]})" for e in options.report_separable]
    lines = [
        f"- Perceptron converged: {listed(main['converged'].astype(bool))}",
        f"- Separable by LP (certified): {listed(lp == 'separable')}",
        f"- Inseparable by LP (certified): {listed(lp == 'inseparable')}",
        f"- Undecided within {options.lp_time_limit:g} s per form: {listed(lp == 'undecided')}",
        f"- The report's separable list: {', '.join(report) or 'none'}",
    ]
    disagreements = main[main.get("disagreement", pd.Series("", index=main.index)).fillna("") != ""]
    lines.append(f"- Disagreements with the LP: {len(disagreements)}"
                 + "".join(f"\n  - ({row.pair}): {row.disagreement}" for row in disagreements.itertuples()))
    return "\n".join(lines)


def learning_curves(cells: list[StoredCell], options: PerceptronOptions, title: str, path: Path) -> Path:
    """Loss per iteration, one panel per curve pair, one line per learning rate (Fig. 2.2, 2.4)."""
    pairs = [tuple(p) for p in options.curve_pairs]
    with plots.plt.rc_context(plots.STYLE):
        figure, axes = plots.plt.subplots(1, len(pairs), figsize=(6 * len(pairs), 4), squeeze=False)
        for axis, pair in zip(axes[0], pairs):
            for stored in sorted((s for s in cells if parse_pair(s.cell.model) == pair),
                                 key=lambda s: (s.cell.params["learning_rate"], s.cell.seed)):
                losses = stored.result.artifacts["losses"]
                state = "converged" if stored.record["converged"] else "cap"
                seed = f", seed {stored.cell.seed}" if options.init_std > 0 else ""
                axis.plot(range(len(losses)), losses, linewidth=1,
                          label=f"lr {stored.cell.params['learning_rate']:g}{seed}: {state}, "
                                f"{stored.record['iterations']} it")
            axis.axhline(options.threshold, color="grey", linestyle="--", linewidth=1, label="threshold")
            axis.set_yscale("symlog", linthresh=max(options.threshold, 1e-4))  # shows a loss of exactly 0
            axis.set_ylim(bottom=0)
            axis.set_xlabel("iteration (weight updates)")
            axis.set_ylabel("loss mean|f - y|")
            axis.set_title(f"pair ({pair[0]},{pair[1]})")
            axis.legend(fontsize=8)
        init = ("zero initial weights:\nthe learning rate only rescales w and b, so the curves coincide"
                if options.init_std == 0 else f"initial weights N(0, {options.init_std:g}²)")
        figure.suptitle(f"{title}: perceptron learning curves ({init})", fontsize=10, y=1.07)
        return plots.save(figure, path)


def weights_image(stored: StoredCell, title: str, path: Path) -> Path:
    """The weights of one pair as a 28x28 image, blue negative and red positive (Fig. 2.3)."""
    weights = np.asarray(stored.result.artifacts["weights"], dtype=np.float64)
    side = int(round(np.sqrt(len(weights))))
    pair = parse_pair(stored.cell.model)
    limit = float(np.abs(weights).max()) or 1.0
    with plots.plt.rc_context({**plots.STYLE, "axes.grid": False}):
        figure, axis = plots.plt.subplots(figsize=(5, 4.4))
        image = axis.imshow(weights.reshape(side, side), cmap="RdBu_r", vmin=-limit, vmax=limit)
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_title(f"{title}: weights for ({pair[0]} = -1, {pair[1]} = +1),\n"
                       f"lr {stored.cell.params['learning_rate']:g}, {stored.record['iterations']} iterations, "
                       f"test {stored.record['test_accuracy']:.2f}%", fontsize=9)
        return plots.save(figure, path)


TASK = PerceptronTask()
