"""A run of a suite: plan the cells, open (or resume) the run in the store, hand the cells to an
executor, commit each result as it comes back, then render tables, plots and the HTML report.

Everything that can be wrong with the input is found before the first file is written. A run of the
same suite and settings that did not finish is resumed: its finished cells are skipped. The executor
decides where cells run; this module alone writes the store.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from harness import calibration, environment
from harness.calibration import RunCalibration
from harness.cells import Cell, RunContext
from harness.errors import StorageError, UserError
from harness.estimate import (RunEstimate, Throughput, estimate_run, format_seconds, stored_throughput,
                              timed_throughput)
from harness.executors import Executor, executor_named, run_in_stages
from harness.paths import point_latest, reports_dir
from harness.progress import RunProgress
from harness.render import html as html_report
from harness.store import ResultsStore, RunInfo, check_reports, now, write_run_files
from harness.suite.overrides import Override
from harness.suite.schema import Suite, settings_difference
from harness.tasks import load_suite, task_for, validate_suite
from harness.tasks.base import Task

if TYPE_CHECKING:
    from harness.backends.base import Backend
    from harness.compare.comparison import Comparison


@dataclass
class RunRequest:
    """What to run; built from the command line, or directly by tests."""

    suite: str
    profile: str = "full"
    overrides: list[Override] = field(default_factory=list)
    models: list[str] | None = None
    resume: str | None = None  # None: automatic; "no": always a new run; else a run id
    reports: Path = field(default_factory=reports_dir)
    container: str | None = None
    executor: str = "local"
    #: Options of the executor (e.g. ray's address, cells_per_gpu, threads_per_cell).
    executor_options: dict[str, object] = field(default_factory=dict)
    #: Record a calibration even for a run that would skip it (TensorFlow only): the nightly check
    #: compares every run by it (:func:`harness.calibration.for_cells`).
    calibrate_always: bool = False
    #: Print the planned cells with their work and estimated time, then stop: nothing written or trained.
    dry_run: bool = False
    #: Refuse (a UserError, before anything is written) a run estimated at more hours than this.
    max_hours: float | None = None


@dataclass
class RunOutcome:
    """Where the results went and how the cells fared."""

    run: RunInfo
    folder: Path
    ran: int
    skipped: int
    failed: list[str]


def plan(request: RunRequest) -> tuple[Suite, Task, list[Cell]]:
    """The validated suite, its task and the cells to run; raises UserError before anything is written."""
    suite = load_suite(request.suite, request.profile, request.overrides)
    task = task_for(suite.task)
    cells = task.plan(suite)
    if request.models is not None:
        known = {cell.model for cell in cells}
        unknown = [name for name in request.models if name not in known]
        if unknown:
            raise UserError(f"model={','.join(unknown)}: not in suite {suite.name}; models: {', '.join(sorted(known))}")
        cells = [cell for cell in cells if cell.model in request.models]
    return suite, task, cells


def backend_devices(task: Task, cells: list[Cell], devices_here: bool = True) -> Iterator[tuple["Backend", str]]:
    """Each backend the cells need, imported, with each of its devices resolved: a missing one fails now.

    ``devices_here`` False (the cells run on other machines, e.g. a Ray cluster's nodes): only the CPU
    is checked here; the executor checks the cluster has the GPUs the cells ask for.
    """
    from harness.backends import get_backend

    if not task.uses_backends:
        return
    for backend_name in dict.fromkeys(cell.backend for cell in cells):
        backend = get_backend(backend_name)
        for device in dict.fromkeys(cell.device for cell in cells if cell.backend == backend_name):
            if device != "cpu" and not devices_here:
                continue
            yield backend, backend.resolve_device(device)


def check_frameworks(task: Task, cells: list[Cell], devices_here: bool = True) -> dict[str, object]:
    """The environment of every backend and device the cells need (:func:`backend_devices` checks them)."""
    info: dict[str, object] = {}
    for backend, device in backend_devices(task, cells, devices_here):
        info.update(backend.environment(device))
    return info


def check_precision(task: Task, cells: list[Cell], precision: str, devices_here: bool = True) -> list[str]:
    """One warning line per backend and device that would emulate ``precision``; UserError where one
    refuses it (docs/backends.md, "Precision")."""
    warnings = (backend.check_precision(precision, device) for backend, device in backend_devices(task, cells, devices_here))
    return list(dict.fromkeys(warning for warning in warnings if warning))


def new_run_id(settings_hash: str) -> str:
    """A new run's id, ``YYYYmmdd-HHMMSS-<hash6>``: when it started (UTC), then the first six characters
    of its settings hash, so ids sort by time and runs of the same settings share their ending."""
    return f"{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}-{settings_hash[:6]}"


def open_run(store: ResultsStore, suite: Suite, request: RunRequest, env: dict,
             console: Console | None = None) -> tuple[RunInfo, bool]:
    """The run to write into, leased to this process: the one asked for, an unfinished one of the same
    settings (the whole resolved suite, matrix included) that no live process is writing, or a new one."""
    if request.resume not in (None, "no"):
        run = store.run(request.resume)
        difference = (f"suite {run.suite}, now {suite.name}" if run.suite != suite.name
                      else settings_difference(run.config, suite.resolved()))
        if difference is not None:
            raise UserError(f"resume={request.resume}: that run has other settings ({difference}); "
                            "start a new run with resume=no")

    def new_run() -> RunInfo:
        return RunInfo(new_run_id(suite.config_hash), suite.name, suite.profile, suite.config_hash, now(), None,
                       "running", suite.resolved(), env)

    def same_settings(stored: RunInfo) -> bool:
        return settings_difference(stored.config, suite.resolved()) is None

    run, resumed, live = store.open_run(suite.name, suite.config_hash, request.resume, new_run, same_settings)
    if console is not None:
        for lease in live:
            console.print(f"run {lease.run_id} of these settings is being written by {lease.describe()}: not "
                          "joining it; to add to it instead, wait for it to finish (or stop it) and run this again",
                          markup=False)
        if request.resume is None and not resumed:
            say_why_not_resumed(store, suite, run.run_id, console)
    return run, resumed


def say_why_not_resumed(store: ResultsStore, suite: Suite, new_run_id: str, console: Console) -> None:
    """Name the setting that kept the newest unfinished run of the same training settings from being
    resumed (another matrix, say), so a new run is no surprise."""
    for stored in reversed(store.runs(suite.name)):
        if stored.run_id != new_run_id and stored.config_hash == suite.config_hash and stored.status != "complete":
            difference = settings_difference(stored.config, suite.resolved())
            if difference is not None:
                console.print(f"not resuming run {stored.run_id}: other settings ({difference})", markup=False)
            return


@dataclass
class _CheckedRun:
    """A run that passed every check: what to run, where, and the environment to record with it."""

    suite: Suite
    task: Task
    cells: list[Cell]
    executor: Executor
    environment: dict[str, object]
    calibration: RunCalibration | None
    #: Lines to print before the cells run (a precision the hardware emulates).
    warnings: list[str] = field(default_factory=list)


@dataclass
class _OpenRun:
    """The store's run this process writes, its folder, and the cells still to run (with their positions)."""

    run: RunInfo
    folder: Path
    todo: list[tuple[int, Cell]]


def run(request: RunRequest, console: Console, executor: Executor | None = None) -> RunOutcome:
    """Run a suite; returns where its results are. Tests call this directly."""
    checked = check(request, executor)
    prepare(checked, request, console)
    estimated = estimate(checked, request, console)
    with ResultsStore(request.reports / "results.db") as store:
        opened = begin(store, checked, request, console)
        failed = run_cells(store, checked, opened, request.reports, console, estimated)
        settled = settle(store, checked, opened, request.reports, console)
    return RunOutcome(settled, opened.folder, len(opened.todo), len(checked.cells) - len(opened.todo), failed)


def check_plan(request: RunRequest) -> tuple[Suite, Task, list[Cell]]:
    """The checks of the input alone (the reports folder, the suite, what the task reads): all a dry
    run needs, without frameworks or devices, so it can plan a GPU run on a machine without one."""
    # The reports folder and the store first: a problem there must not wait for the rest.
    check_reports(request.reports, Path(request.suite).stem if request.suite.endswith(".toml") else request.suite,
                  request.resume)
    suite, task, cells = plan(request)
    if not cells:
        raise UserError(f"suite {suite.name}: nothing to run (no models or an empty matrix)")
    task.check(suite, request.reports)
    return suite, task, cells


def check(request: RunRequest, executor: Executor | None) -> _CheckedRun:
    """Every check of the input, the frameworks and the executor; raises UserError before anything is
    written, and before the calibration and the data, which take seconds."""
    suite, task, cells, executor = check_input(request, executor)
    if task.uses_dataset:
        from harness.data import check_cache

        check_cache(suite.data.dataset)
    env = environment.collect()
    devices_here = executor.name == "local"
    env.update(check_frameworks(task, cells, devices_here))
    warnings = check_precision(task, cells, suite.train.precision, devices_here)
    if task.uses_backends:
        # In the environment too, so the gate sees a bf16 run's timings as another setting's (harness.compare).
        env["precision"] = suite.train.precision
    executor.start(cells)  # an unreachable cluster fails here, before anything is written
    calibrations = calibration.for_cells(task, cells, devices_here, always=request.calibrate_always)
    return _CheckedRun(suite, task, cells, executor, env, calibrations, warnings)


def check_input(request: RunRequest, executor: Executor | None) -> tuple[Suite, Task, list[Cell], Executor]:
    """The checks that start nothing: the executor's options, then :func:`check_plan`. Returns the
    suite, its task, the cells and the executor (the one given, else the one ``request`` names). A
    study runs them for every member before it writes anything."""
    executor = executor or executor_named(request.executor, **request.executor_options)
    suite, task, cells = check_plan(request)
    return suite, task, cells, executor


def prepare(checked: _CheckedRun, request: RunRequest, console: Console) -> None:
    """The calibration before the cells (compare tells a busy or slower machine from slower code by
    it), the dataset fetched and verified, and each override printed."""
    if checked.calibration is not None:
        checked.environment["calibration"] = checked.calibration.before_cells()
    if checked.task.uses_dataset:
        from harness.data import ensure

        ensure(checked.suite.data.dataset, log=lambda message: console.print(message, markup=False))
    for override in request.overrides:
        console.print(f"override {override.key} = {override.value!r} ({override.source})", markup=False)
    for warning in checked.warnings:
        console.print(warning, markup=False)


def dry_run(request: RunRequest, console: Console) -> RunEstimate:
    """``dry_run=true``: print the planned cells, each with its work and estimated time, then the totals.
    Writes nothing (the store is only read, and only if it exists), trains nothing, and imports a
    framework only to time a calibration no earlier run on this machine has stored."""
    suite, task, cells = check_plan(request)
    with stored_results(request.reports) as store:
        host = environment.collect()["hostname"]
        estimated = estimate_run(task, suite, cells, store,
                                 lambda device: stored_throughput(store, device, host) or timed_throughput(device))
    console.print(f"dry run of {suite.name} ({suite.profile}): nothing is written or trained", markup=False)
    console.print(estimated.table())
    console.print(f"total: {estimated.total()}", markup=False)
    warning = estimated.warning()
    if warning:
        console.print(warning, markup=False)
    return estimated


def estimate(checked: _CheckedRun, request: RunRequest, console: Console) -> RunEstimate:
    """Estimate the run from the store's history and the calibration just taken; warn before long work
    on a CPU, and refuse (UserError) past ``max_hours``, all before anything is written."""
    taken = checked.environment.get("calibration")
    host = str(checked.environment.get("hostname"))

    def throughput(device: str) -> Throughput | None:
        if isinstance(taken, dict) and taken.get("device") == device and taken.get("gflops"):
            return Throughput(device, float(taken["gflops"]), "this run's")
        return stored_throughput(store, device, host)

    with stored_results(request.reports) as store:
        estimated = estimate_run(checked.task, checked.suite, checked.cells, store, throughput)
    hours = estimated.seconds / 3600
    if request.max_hours is not None and hours > request.max_hours:
        raise UserError(f"max_hours={request.max_hours:g}: this run is estimated at {format_seconds(estimated.seconds)} "
                        f"({estimated.total()}); shorten it (profile=smoke, a GPU, executor=ray) or raise max_hours")
    warning = estimated.warning()
    if warning:
        console.print(warning, markup=False)
    return estimated


@contextlib.contextmanager
def stored_results(reports: Path) -> Iterator[ResultsStore | None]:
    """The results store to read, or None where there is none yet (reading must not create one)."""
    database = reports / "results.db"
    if not database.is_file():
        yield None
        return
    with ResultsStore(database) as store:
        yield store


def begin(store: ResultsStore, checked: _CheckedRun, request: RunRequest, console: Console) -> _OpenRun:
    """Open (or resume) the run, make its folder the suite's latest, and say how many cells are left."""
    suite, cells = checked.suite, checked.cells
    run_info, resumed = open_run(store, suite, request, checked.environment, console)
    folder = run_info.folder(request.reports)
    folder.mkdir(parents=True, exist_ok=True)
    point_latest(folder.parent, run_info.run_id)
    done = store.finished_keys(run_info.run_id)
    todo = [(position, cell) for position, cell in enumerate(cells) if cell.key not in done]
    verb = "resuming" if resumed and done else "starting"  # a study creates its members' runs empty
    console.print(f"{verb} run {run_info.run_id} of {suite.name} ({suite.profile}): "
                  f"{len(todo)} cell(s) to run, {len(cells) - len(todo)} already done", markup=False)
    return _OpenRun(run_info, folder, todo)


def run_cells(store: ResultsStore, checked: _CheckedRun, opened: _OpenRun, reports: Path,
              console: Console, estimated: RunEstimate | None = None) -> list[str]:
    """Hand the cells left to the executor and commit each result as it comes back, with the
    calibration around it; returns a line for each failed cell. The run-wide bar weighs each cell by
    its estimated time, so its ETA holds across cells of different sizes."""
    task, run_id = checked.task, opened.run.run_id
    failed: list[str] = []
    files = _ResultsFiles(store, opened.folder, opened.run, task.columns)
    weights = {cell.key: estimated.weight(cell) if estimated else 1.0 for _, cell in opened.todo}
    with RunProgress(console, len(opened.todo), work=sum(weights.values())) as progress, files:
        finished = {s.cell.key: s.record for s in store.cells(run_id) if s.result.ok}
        context = RunContext(opened.folder, progress, reports, inputs=finished)
        for position, cell, result in run_in_stages(checked.executor, opened.todo, context):
            around = checked.calibration.after_cell() if checked.calibration is not None else None
            if around is not None:
                result.artifacts["calibration"] = around
            store.save_cell(run_id, position, cell, result)
            files.cell_saved()
            if result.ok:
                progress.finish_cell(task.summary(result), work=weights[cell.key])
            else:
                failed.append(f"{cell.model} ({cell.backend}, {cell.device}, seed {cell.seed}): {result.error}")
                progress.finish_cell(f"FAILED: {result.error}", work=weights[cell.key])
    return failed


def settle(store: ResultsStore, checked: _CheckedRun, opened: _OpenRun, reports: Path, console: Console) -> RunInfo:
    """The run's calibration after the cells, its files rendered, then its status committed; returns
    the stored run."""
    run_info, env = opened.run, checked.environment
    # Complete only when every cell of the suite is there, not only those asked for with model=.
    status = store.settled_status(run_info.run_id, [cell.key for cell in checked.task.plan(checked.suite)])
    if checked.calibration is not None and opened.todo:
        env["calibration"] = checked.calibration.after_cells()
    settled = replace(run_info, status=status, finished=now(), environment=env if opened.todo else run_info.environment)
    # Files first, status last: a run killed in between is still unfinished, so a rerun writes them again.
    render_run(store, reports, settled, console, index=False)
    store.update_run(run_info.run_id, status=status, environment=env if opened.todo else None,
                     finished=settled.finished)
    html_report.write_index(store, reports)  # after the status, so it shows the committed one
    return store.run(run_info.run_id)


#: Least seconds between two rewrites of a running run's results files.
RESULTS_FILES_INTERVAL = 30.0


class _ResultsFiles:
    """Keeps a running run's ``results.csv`` and ``results.json`` current as its cells finish.

    The store holds every finished cell the moment it is saved; the files are a readable copy. Each
    rewrite reads and serialises every cell of the run, so rewriting after every cell costs time
    quadratic in the cells: they are rewritten at most every ``RESULTS_FILES_INTERVAL`` seconds, and
    once more when the loop is left by an exception (Ctrl-C, a crash); a loop that ends well is
    rendered next, files first. Only a kill -9 leaves them behind the store, and then the run is
    unfinished: the rerun writes them again.
    """

    def __init__(self, store: ResultsStore, folder: Path, run: RunInfo, columns: Sequence[str]) -> None:
        self.store, self.folder, self.run, self.columns = store, folder, run, columns
        self.written = time.monotonic()
        self.pending = False

    def cell_saved(self) -> None:
        self.pending = True
        if time.monotonic() - self.written >= RESULTS_FILES_INTERVAL:
            self.write()

    def write(self) -> None:
        write_run_files(self.folder, self.run, self.store.cells(self.run.run_id), self.columns)
        self.written, self.pending = time.monotonic(), False

    def __enter__(self) -> "_ResultsFiles":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self.pending and exc_type is not None:
            try:
                self.write()
            except (OSError, StorageError):
                pass  # the disk that failed the run fails this too: the rerun writes them; report the first error


def render_run(store: ResultsStore, reports: Path, run: RunInfo, console: Console | None,
               comparison: "Comparison | None" = None, index: bool = True) -> Path:
    """Write a stored run's results files, its task's tables and figures, its HTML page and (``index``)
    the reports index; returns its folder. Reads the store only: rendering never retrains."""
    suite = validate_suite(run.config, f"run {run.run_id}")  # the settings the run used, unchanged
    task = task_for(suite.task)
    cells = store.cells(run.run_id)
    folder = run.folder(reports)
    write_run_files(folder, run, cells, task.columns)
    tables = task.render(suite, cells, folder, console)
    html_report.write_report(store, reports, run, tables, comparison, index=index)
    return folder
