"""Executors: stages of dependent cells, the ray executor's options and errors, and the same numbers,
resume and no lost or doubled cell when cells run as Ray tasks (one shared local Ray instance for the
module; the node-failure test builds its own two-node cluster).
"""

from __future__ import annotations

import csv
import importlib.util
import socket
import time

import pytest

from harness import cli, runner
from harness.cells import Cell, RunContext
from harness.commands.run import request_from_arguments
from harness.errors import UserError
from harness.executors import executor_named, stages
from harness.executors.local import run_cell
from harness.progress import RunProgress
from harness.runner import RunRequest
from harness.store import ResultsStore
from harness.suite.overrides import Override


def cell(model: str, needs: tuple[str, ...] = ()) -> Cell:
    return Cell("s", "classify", model, "torch", "cpu", 0, {}, {}, needs)


def test_stages_put_a_cell_after_the_cells_it_needs():
    a, b, c = cell("a"), cell("b"), cell("c")
    retrain = cell("r", needs=(a.key, b.key))
    after = cell("z", needs=(retrain.key,))
    planned = stages([(0, a), (1, retrain), (2, b), (3, after), (4, c)])
    assert [[position for position, _ in stage] for stage in planned] == [[0, 2, 4], [1], [3]]



def test_a_cell_that_raises_is_a_failed_record_naming_the_cell(tmp_path, console):
    broken = Cell("s", "classify", "m", "torch", "cpu", 3, {})  # no suite settings: the task cannot start
    result = run_cell(broken, RunContext(tmp_path, RunProgress(console, 1), tmp_path))
    assert result.status == "failed" and result.error and "\n" not in result.error and result.artifacts == {}
    assert result.record == {"suite": "s", "model": "m", "backend": "torch", "device": "cpu", "seed": 3,
                             "status": "failed", "error": result.error}

def test_needs_finished_earlier_or_outside_the_run_hold_nothing_back():
    # On resume the trials are done (not in the cells to run): the retrain cells run at once.
    retrain = cell("r", needs=(cell("a").key, cell("b").key))
    assert stages([(5, retrain), (6, cell("c"))]) == [[(5, retrain), (6, cell("c"))]]


def test_cells_that_wait_for_each_other_are_refused():
    first = cell("x", needs=(cell("y").key,))
    second = cell("y", needs=(first.key,))
    with pytest.raises(RuntimeError, match="cells wait for each other"):
        stages([(0, first), (1, second)])


def test_needs_survive_the_round_trip_through_json():
    retrain = cell("r", needs=(cell("a").key,))
    assert tuple(Cell.from_json(retrain.to_json()).needs) == retrain.needs
    assert Cell.from_json(cell("a").to_json()).needs in ((), [])


def test_ray_options_need_executor_ray_and_positive_integers():
    with pytest.raises(UserError, match=r"^ray_address, threads_per_cell: only with executor=ray$"):
        request_from_arguments(["suite=mlp_depth", "ray_address=auto", "threads_per_cell=1"])
    request = request_from_arguments(["suite=mlp_depth", "executor=ray", "cells_per_gpu=4", "ray_address=auto"])
    assert (request.executor, request.executor_options) == ("ray", {"address": "auto", "cells_per_gpu": "4"})
    with pytest.raises(UserError, match=r"threads_per_cell='0': expected a positive integer"):
        executor_named("ray", threads_per_cell="0")
    with pytest.raises(UserError, match=r"executor='dask': allowed: local, ray"):
        executor_named("dask")


def test_missing_ray_is_a_one_line_error_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # what `import ray` meets without the extra
    reports = tmp_path / "reports"
    code = cli.main(["run", "suite=perceptron", "profile=smoke", "executor=ray", f"reports={reports}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not reports.exists()
    assert err.endswith("executor=ray: Ray is not installed; pip install 'harness[ray]'") and "\n" not in err


HAS_RAY = importlib.util.find_spec("ray") is not None
#: Ray tests: slow-ish (a Ray start is seconds) and skipped, with the reason, where Ray is not installed.
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="ray is not installed: pip install 'harness[ray]'")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free once the socket closes: nothing listens there


@needs_ray
@pytest.mark.parametrize("form", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}"])
def test_an_unreachable_cluster_is_a_one_line_error_and_nothing_is_written(tmp_path, capsys, form):
    reports = tmp_path / "reports"
    address = form.format(port=closed_port())
    started = time.monotonic()
    code = cli.main(["run", "suite=perceptron", "profile=smoke", "executor=ray", f"ray_address={address}",
                     f"reports={reports}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not reports.exists() and "\n" not in err
    assert f"ray_address={address}: no Ray cluster reachable there" in err
    assert time.monotonic() - started < 30


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance with 2 CPUs for the module's tests (starting one costs seconds)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@needs_ray
@pytest.mark.slow
def test_cells_the_cluster_cannot_hold_are_refused_at_start(local_ray):
    gpu_cell = Cell("s", "classify", "m", "torch", "cuda", 0, {}, {})
    with pytest.raises(UserError, match=r"^device=cuda: the Ray cluster has no GPU; use device=cpu or device=auto$"):
        executor_named("ray").start([gpu_cell])
    with pytest.raises(UserError, match=r"^threads_per_cell=3: no Ray node has that many CPUs \(the largest has 2\)$"):
        executor_named("ray", threads_per_cell=3).start([cell("a")])
    auto = executor_named("ray", cells_per_gpu=4)
    auto.start([cell("a")])
    assert auto.gpus(Cell("s", "classify", "m", "torch", "auto", 0, {}, {})) == 0.0  # no GPU here: a CPU cell


MODELS = ["Additional Model 1", "Additional Model 5", "MLP Baseline Model"]


def tiny(reports, **extra) -> RunRequest:
    """Three mlp_depth models, two epochs on 300 images: seconds per cell, yet a real training run."""
    overrides = [Override("data.train_samples", 300), Override("data.test_samples", 100), Override("train.epochs", 2)]
    return RunRequest("mlp_depth", "smoke", overrides=overrides, models=MODELS, reports=reports, **extra)


def stored(reports):
    with ResultsStore(reports / "results.db") as store:
        [run] = store.runs("mlp_depth")
        return run, store.cells(run.run_id)


class InterruptedAfterFirstResult:
    """The ray executor, with Ctrl-C pressed once the first cell is back."""

    name = "ray"

    def __init__(self, **options):
        self.inner = executor_named("ray", **options)

    def start(self, cells):
        self.inner.start(cells)

    def run(self, cells, context):
        for item in self.inner.run(cells, context):
            yield item
            raise KeyboardInterrupt


@needs_ray
@pytest.mark.slow
def test_ray_gives_the_numbers_local_gives_and_ctrl_c_then_resume_works_across_executors(
        tmp_path, mnist, console, local_ray, monkeypatch):
    # The same numbers need the same arithmetic: one framework thread on both sides (threads_per_cell=1
    # below), since a reduction split over two threads rounds differently.
    monkeypatch.setenv("HARNESS_THREADS", "1")
    local = runner.run(tiny(tmp_path / "local"), console)
    by_local = {s.cell.key: s.result for s in stored(tmp_path / "local")[1]}

    reports = tmp_path / "ray"
    with pytest.raises(KeyboardInterrupt):
        runner.run(tiny(reports), console, InterruptedAfterFirstResult(threads_per_cell=1))
    run, cells = stored(reports)
    assert run.status == "running" and len(cells) == 1  # the finished cell is kept
    deadline = time.monotonic() + 30
    while local_ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # the cancelled cells give their CPUs back
    assert local_ray.available_resources().get("CPU", 0) == 2

    resumed = runner.run(tiny(reports, executor="ray", executor_options={"threads_per_cell": 1}), console)
    assert (resumed.run.run_id, resumed.ran, resumed.skipped) == (run.run_id, 2, 1)
    _, cells = stored(reports)
    assert len(cells) == 3 and all(s.result.ok for s in cells)
    for s in cells:
        mine, theirs = s.result, by_local[s.cell.key]
        assert mine.record["executor"] == "ray" and theirs.record["executor"] == "local"
        assert mine.record["params"] == theirs.record["params"]
        # Bit for bit in a fresh process; after other tests in this one (thread pools, kernels already
        # chosen) float32 sums may round in another order, so the losses agree to float32's precision.
        for metric in ("train_loss", "val_loss"):
            assert [e[metric] for e in mine.artifacts["history"]] == pytest.approx(
                [e[metric] for e in theirs.artifacts["history"]], rel=1e-6)
        assert mine.record["test_accuracy"] == theirs.record["test_accuracy"]
        assert len(mine.record["node"]) == 56 and mine.record["queued_seconds"] >= 0
        # The worker's figures came back into the driver's run folder.
        assert all((resumed.folder / figure).stat().st_size > 0 for figure in mine.artifacts["figures"])

    def table(folder):  # the rendered table without its timing columns
        with open(folder / "table.csv") as handle:
            return [{k: v for k, v in row.items() if k not in ("Train s", "s/epoch")} for row in csv.DictReader(handle)]

    assert table(resumed.folder) == table(local.folder)


@pytest.fixture
def two_nodes():
    """A Ray cluster of two 1-CPU worker nodes in this machine (the head takes no cells)."""
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()  # leave the module's local instance: the driver joins this cluster instead
    # Notice a dead node in about a second instead of Ray's default half-minute.
    config = {"health_check_period_ms": 500, "health_check_failure_threshold": 2, "health_check_initial_delay_ms": 0}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "_system_config": config})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


class KillsANodeAfterFirstResult:
    """The ray executor; once the first cell is back (the others running), a worker node dies."""

    name = "ray"

    def __init__(self, cluster, node):
        self.inner = executor_named("ray", threads_per_cell=1)
        self.cluster, self.node, self.killed = cluster, node, None

    def start(self, cells):
        self.inner.start(cells)

    def run(self, cells, context):
        for item in self.inner.run(cells, context):
            yield item
            if self.killed is None:
                self.killed = self.node.node_id
                self.cluster.remove_node(self.node, allow_graceful=False)


@needs_ray
@pytest.mark.slow
def test_a_dead_worker_node_loses_and_doubles_no_cell(tmp_path, mnist, console, two_nodes):
    cluster, workers = two_nodes
    executor = KillsANodeAfterFirstResult(cluster, workers[1])
    reports = tmp_path / "reports"
    outcome = runner.run(tiny(reports), console, executor)
    assert executor.killed is not None and outcome.failed == []
    run, cells = stored(reports)
    assert run.status == "partial"  # every cell asked for is done; the suite's other models were not asked for
    assert sorted(s.cell.model for s in cells) == sorted(MODELS)  # each cell once: none lost, none doubled
    assert all(s.result.ok for s in cells)
    with open(outcome.folder / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == len(MODELS)
    survivor = workers[0].node_id
    # Only the cell that came back before the kill may have run on the dead node.
    assert sum(s.record["node"] == executor.killed for s in cells) <= 1
    assert all(s.record["node"] in (survivor, executor.killed) for s in cells)


def test_a_provided_dataset_is_what_load_returns_without_the_disk(monkeypatch, tmp_path):
    # How a Ray worker gets the driver's verified arrays: nothing is read from its (empty) cache.
    import numpy as np

    from harness import data
    from harness.data import idx

    monkeypatch.setattr(idx, "_PROVIDED", {})
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "empty"))
    images = np.zeros((4, 28, 28), np.uint8)
    given = data.Dataset("mnist", images, np.arange(4, dtype=np.uint8), images, np.arange(4, dtype=np.uint8),
                         tuple(str(d) for d in range(10)))
    data.provide(given)
    assert data.load("mnist") is given
    assert not (tmp_path / "empty").exists()
