"""Executors: stages of dependent cells, the ray executor's options and errors, and the same numbers,
resume and no lost or doubled cell when cells run as Ray tasks (one shared local Ray instance for the
module; the node-failure test builds its own two-node cluster).
"""

from __future__ import annotations

import csv
import socket
import time

import pytest

from harness import cli, runner
from harness.cells import Cell
from harness.commands.run import request_from_arguments
from harness.errors import UserError
from harness.executors import executor_named, stages
from harness.executors.local import LocalExecutor
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


ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'harness[ray]')")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free once the socket closes: nothing listens there


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
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


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

    def start(self):
        self.inner.start()

    def run(self, cells, context):
        for item in self.inner.run(cells, context):
            yield item
            raise KeyboardInterrupt


def test_ray_gives_the_numbers_local_gives_and_ctrl_c_then_resume_works_across_executors(
        tmp_path, mnist, console, local_ray):
    local = runner.run(tiny(tmp_path / "local"), console)
    by_local = {s.cell.key: s.result for s in stored(tmp_path / "local")[1]}

    reports = tmp_path / "ray"
    with pytest.raises(KeyboardInterrupt):
        runner.run(tiny(reports), console, InterruptedAfterFirstResult(threads_per_cell=1))
    run, cells = stored(reports)
    assert run.status == "running" and len(cells) == 1  # the finished cell is kept
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # the cancelled cells give their CPUs back
    assert ray.available_resources().get("CPU", 0) == 2

    resumed = runner.run(tiny(reports, executor="ray", executor_options={"threads_per_cell": 1}), console)
    assert (resumed.run.run_id, resumed.ran, resumed.skipped) == (run.run_id, 2, 1)
    _, cells = stored(reports)
    assert len(cells) == 3 and all(s.result.ok for s in cells)
    for s in cells:
        mine, theirs = s.result, by_local[s.cell.key]
        assert mine.record["executor"] == "ray" and theirs.record["executor"] == "local"
        assert mine.record["params"] == theirs.record["params"]
        assert [e["train_loss"] for e in mine.artifacts["history"]] == [e["train_loss"] for e in theirs.artifacts["history"]]
        assert [e["val_loss"] for e in mine.artifacts["history"]] == [e["val_loss"] for e in theirs.artifacts["history"]]
        assert mine.record["test_accuracy"] == theirs.record["test_accuracy"]
        assert len(mine.record["node"]) == 56 and mine.record["queued_seconds"] >= 0
        # The worker's figures came back into the driver's run folder.
        assert all((resumed.folder / figure).stat().st_size > 0 for figure in mine.artifacts["figures"])

    def table(folder):  # the rendered table without its timing columns
        with open(folder / "table.csv") as handle:
            return [{k: v for k, v in row.items() if k not in ("Train s", "s/epoch")} for row in csv.DictReader(handle)]

    assert table(resumed.folder) == table(local.folder)
