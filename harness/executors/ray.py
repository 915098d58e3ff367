"""The Ray executor: each cell a Ray task, on a Ray instance started for the run or an existing cluster.

``harness run ... executor=ray`` starts a local Ray instance with this machine's CPUs and GPUs;
``ray_address=auto|HOST:PORT|ray://HOST:10001`` joins a running cluster instead. Each cell asks Ray
for what it will use: ``threads_per_cell`` CPUs (the framework's thread count is set to the same
number inside the task, through ``HARNESS_THREADS``) and, for CUDA cells, ``1/cells_per_gpu`` of a
GPU, so Ray packs as many cells onto the machines as fit. Results come back as cells finish; the
driver (``harness.runner``) alone writes the store.

A worker runs the cell in a scratch folder and sends the files it wrote (figures, saved weights)
back with its result, so a cell runs the same on a node that shares no disk with the driver. Its
dataset comes from the driver, which read and verified it (SHA-256), through Ray's object store: a
new worker maps it faster than it could verify and read it from a node-local cache (measured in
docs/performance.md), and a worker node needs no copy of its own.

A worker process or node that dies takes its cell with it: Ray runs the cell again elsewhere, up to
``MAX_RETRIES`` times, then the cell is recorded failed. Ctrl-C cancels the cells not yet finished;
those already back are in the store, and the same command resumes the run.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.cells import Cell, CellResult, RunContext
from harness.errors import UserError
from harness.executors.local import cell_label, placed, run_cell

#: Attempts beyond the first when a cell's worker process or node dies (an exception in the cell is
#: not retried: it is the cell's result).
MAX_RETRIES = 3
#: How long to wait for a cluster's address to answer before calling it unreachable.
CONNECT_TIMEOUT_S = 5.0
INSTALL_HINT = "pip install 'harness[ray]'"


def _positive(option: str, value: Any) -> int | None:
    if value is None:
        return None
    text = str(value)
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"{option}={value!r}: expected a positive integer")
    return int(text)


class RayExecutor:
    """Runs cells as Ray tasks; see the module docstring."""

    name = "ray"

    def __init__(self, address: str | None = None, cells_per_gpu: Any = 1, threads_per_cell: Any = None,
                 max_retries: int = MAX_RETRIES) -> None:
        self.address = address
        self.cells_per_gpu = _positive("cells_per_gpu", cells_per_gpu) or 1
        self.threads_per_cell = _positive("threads_per_cell", threads_per_cell)
        self.max_retries = max_retries
        self._threads = 1
        self._cluster_gpus = 0.0
        #: (submitted, started, finished, received) wall-clock times of each cell of the last ``run``
        #: (started and finished on the worker), in the order cells came back: for benchmarks.
        self.timings: list[tuple[float, float, float, float]] = []
        self._datasets: dict[str, Any] = {}  # dataset name -> object ref, put once per run

    def start(self, cells: Sequence[Cell]) -> None:
        """Start or join Ray and check the cells' resources fit a node; any problem is one UserError."""
        try:
            import ray
        except ImportError:
            raise UserError(f"executor=ray: Ray is not installed; {INSTALL_HINT}") from None
        if self.address not in (None, "auto"):
            _check_reachable(self.address)
        if not ray.is_initialized():  # already connected (a test, a notebook): use that instance
            try:
                ray.init(address=self.address, include_dashboard=False, logging_level=logging.ERROR,
                         log_to_driver=bool(os.environ.get("HARNESS_TRACEBACK")))
            except Exception as error:  # noqa: BLE001 - whatever Ray raises, the user gets one line
                where = f"ray_address={self.address}" if self.address else "executor=ray"
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise UserError(f"{where}: could not start or join Ray: {first}") from None
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        most_cpus = int(max((resources.get("CPU", 0) for resources in nodes), default=0))
        self._cluster_gpus = sum(resources.get("GPU", 0) for resources in nodes)
        if self.threads_per_cell is None:
            # The threads a local run would use, so both executors compute the same numbers by default.
            from harness.threads import framework_threads

            self._threads = max(1, min(framework_threads(), most_cpus))
        elif self.threads_per_cell > most_cpus:
            raise UserError(f"threads_per_cell={self.threads_per_cell}: no Ray node has that many CPUs "
                            f"(the largest has {most_cpus})")
        else:
            self._threads = self.threads_per_cell
        for cell in cells:
            self.gpus(cell)  # a CUDA cell on a cluster without GPUs: refused now, not once the run is open

    def gpus(self, cell: Cell) -> float:
        """The share of a GPU ``cell`` asks Ray for: 1/cells_per_gpu for a CUDA cell, else none."""
        wants_gpu = cell.device == "cuda" or (cell.device == "auto" and self._cluster_gpus > 0)
        if wants_gpu and self._cluster_gpus == 0:
            raise UserError(f"device={cell.device}: the Ray cluster has no GPU; use device=cpu or device=auto")
        return 1.0 / self.cells_per_gpu if wants_gpu else 0.0

    def run(self, cells: Sequence[tuple[int, Cell]], context: RunContext) -> Iterator[tuple[int, Cell, CellResult]]:
        import ray

        task = ray.remote(run_on_worker)
        submitted = time.time()
        self.timings = []
        refs: dict[Any, tuple[int, Cell]] = {}
        for position, cell in cells:
            inputs = {key: context.inputs[key] for key in cell.needs if key in context.inputs}
            dataset = self._dataset(cell)
            ref = task.options(
                num_cpus=self._threads, num_gpus=self.gpus(cell), max_retries=self.max_retries,
                # Set before the worker imports a framework: torch and TF read it once, at start.
                runtime_env={"env_vars": {"HARNESS_THREADS": str(self._threads)}},
            ).remote(cell, inputs, str(context.reports), dataset)
            refs[ref] = (position, cell)
        pending = list(refs)
        try:
            while pending:
                [ready], pending = ray.wait(pending, num_returns=1)
                position, cell = refs[ready]
                try:
                    result, files, node, started, finished = ray.get(ready)
                except ray.exceptions.RayError as error:
                    # The worker or node died more often than Ray retries, or Ray lost the result.
                    message = f"ray: {type(error).__name__}: {str(error).strip().splitlines()[0]}"[:300]
                    result, files, node = CellResult.failed(cell, message), {}, ""
                    started = finished = time.time()
                for relative, content in files.items():
                    path = context.run_dir / relative
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(content)
                context.progress.start_cell(cell_label(cell))
                self.timings.append((submitted, started, finished, time.time()))
                yield position, cell, placed(result, self.name, node, started - submitted)
        finally:
            for ref in pending:  # Ctrl-C or an error in the driver: stop what has not finished
                ray.cancel(ref, force=True)


    def _dataset(self, cell: Cell) -> Any:
        """The object ref of the dataset ``cell`` reads (put the first time), or None."""
        from harness.tasks import task_for

        if not task_for(cell.task).uses_dataset:
            return None
        name = cell.config["data"]["dataset"]
        if name not in self._datasets:
            import ray

            from harness import data

            self._datasets[name] = ray.put(data.load(name))
        return self._datasets[name]


def run_on_worker(cell: Cell, inputs: dict[str, dict], reports: str,
                  dataset: Any = None) -> tuple[CellResult, dict[str, bytes], str, float, float]:
    """The Ray task: run ``cell`` in a scratch folder; (result, files written, node id, start and end time).

    ``dataset`` is the driver's (Ray resolves the object ref to the arrays, mapped read-only).
    """
    import ray
    from rich.console import Console

    from harness import data
    from harness.progress import RunProgress

    started = time.time()
    if dataset is not None:
        data.provide(dataset)
    with tempfile.TemporaryDirectory(prefix="harness-cell-") as scratch:
        # The driver shows progress; here the cell's epoch lines go nowhere.
        quiet = RunProgress(Console(file=io.StringIO()), 1)
        result = run_cell(cell, RunContext(Path(scratch), quiet, Path(reports), inputs=dict(inputs)))
        files = {str(path.relative_to(scratch)): path.read_bytes()
                 for path in sorted(Path(scratch).rglob("*")) if path.is_file()}
    return result, files, ray.get_runtime_context().get_node_id(), started, time.time()


def _check_reachable(address: str) -> None:
    """Fail in seconds with one line when nothing listens at ``address`` (Ray itself retries for minutes)."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"ray_address={address!r}: allowed: auto, HOST:PORT, ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise UserError(f"ray_address={address}: no Ray cluster reachable there ({error.strerror or error})") from None
