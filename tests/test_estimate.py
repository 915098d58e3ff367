"""Estimates before a run: the dry run's plan, calibration- and history-based figures, the warning and
the refusal of long work. None of these tests trains a model."""

from __future__ import annotations

import pytest

from harness import estimate, runner
from harness.cells import CellResult
from harness.commands.run import main, request_from_arguments
from harness.errors import UserError
from harness.estimate import RunEstimate, Throughput, estimate_run, from_calibration
from harness.runner import RunRequest, plan
from harness.store import ResultsStore, RunInfo, now

FIXED = Throughput("cpu", 100.0, "test")


@pytest.fixture
def fixed_cpu(monkeypatch):
    """A CPU calibration of 100 GFLOP/s instead of one timed now (no torch import, same figure each time)."""
    monkeypatch.setattr(runner, "timed_throughput", lambda device: FIXED if device == "cpu" else None)


def test_training_work_follows_the_spec_and_the_split():
    suite, task, cells = plan(RunRequest("cnn_depth"))
    work = task.work(suite, cells[0])
    forward = suite.model("CNN Baseline Model").flops
    assert (work.epochs, work.train_samples, work.steps) == (10, 54_000, 1080 * 10)
    assert work.training_flops == 3 * forward * 54_000 * 10
    assert work.evaluation_flops == forward * (6_000 * 10 + 54_000 + 10_000)
    assert work.conv_share > 0.99  # three convolutions and one small dense layer
    # The whole suite: the 12.4 PFLOP of training.
    total = sum(task.work(suite, cell).training_flops for cell in cells)
    assert 12.3e15 < total < 12.5e15


def test_dry_run_lists_the_nine_cells_and_a_total_and_writes_nothing(reports, console, fixed_cpu):
    assert main(["suite=cnn_depth", "dry_run=true", f"reports={reports}"], console) == 0
    text = console.file.getvalue()
    rows = [line for line in text.splitlines() if "│ torch" in line]
    assert len(rows) == 9 and all("calibration 100 GFLOP/s (test)" in row for row in rows)
    assert "Additional Model 8" in rows[-1] and "5.2 PFLOP" in rows[-1]
    assert "total: 9 cell(s), 12.4 PFLOP of training, estimated" in text
    assert "warning: this run is estimated at" in text and "profile=smoke" in text
    assert not reports.exists()


def test_a_study_dry_run_lists_every_member_even_for_a_gpu_this_machine_lacks(reports, console, fixed_cpu,
                                                                             monkeypatch):
    # Planning a study checks no framework, device or executor: a GPU study can be planned on a CPU.
    monkeypatch.setattr(estimate, "gpu_present", lambda: False)
    assert main(["suite=report", "profile=smoke", "device=cuda", "dry_run=true", f"reports={reports}"], console) == 0
    text = console.file.getvalue()
    members = [line.split("member ")[1] for line in text.splitlines() if line.startswith("report: member ")]
    assert members == ["pca", "perceptron", "mlp_baseline", "mlp_depth", "cnn_baseline", "mlp_vs_cnn", "cnn_depth",
                       "visualize", "mtl"]
    assert "study report (smoke): 9 member(s), estimated" in text
    assert not reports.exists()


def test_dry_run_for_a_gpu_this_machine_lacks_says_it_cannot_estimate(reports, console, monkeypatch):
    monkeypatch.setattr(estimate, "gpu_present", lambda: False)
    estimated = runner.dry_run(request_from_arguments(["suite=cnn_depth", "device=cuda", f"reports={reports}"]),
                               console)
    assert estimated.unknown == 9 and estimated.seconds == 0
    assert {cell.source for cell in estimated.cells} == {"cannot estimate: no calibration for cuda on this machine"}
    assert "total: 9 cell(s), 12.4 PFLOP of training, cannot be estimated" in console.file.getvalue()
    assert not reports.exists()


def test_a_gpu_calibration_stored_on_this_host_estimates_gpu_cells(reports, console, monkeypatch):
    store_run(reports, "mlp_baseline", records=[], calibration={"device": "cuda", "gflops": 5000.0})
    monkeypatch.setattr(estimate, "gpu_present", lambda: False)
    request = request_from_arguments(["suite=cnn_depth", "device=cuda", "model=CNN Baseline Model",
                                      f"reports={reports}"])
    [cell] = runner.dry_run(request, console).cells
    assert cell.source.startswith("calibration 5000 GFLOP/s (stored by run ")
    assert cell.seconds == pytest.approx(from_calibration(cell.work, 5000.0))


def test_history_of_the_same_model_backend_and_device_wins_and_scales_with_the_data(reports, console, fixed_cpu):
    # An earlier smoke run: 4,500 training images at 2 s an epoch.
    record = {"model": "MLP Baseline Model", "device": "cpu", "flops": 3_588_000, "train_samples": 4500,
              "seconds_per_epoch": 2.0, "train_seconds": 2.0}
    store_run(reports, "mlp_baseline", records=[record])
    before = sorted(p.name for p in reports.rglob("*"))
    [cell] = runner.dry_run(RunRequest("mlp_baseline", reports=reports), console).cells
    assert cell.source == "history (1 earlier cell(s))"
    assert cell.seconds == pytest.approx(2.0 / 4500 * 54_000 * 10)  # full: 54,000 images, 10 epochs
    assert sorted(p.name for p in reports.rglob("*")) == before  # the dry run only read the store


def test_a_task_without_flops_is_estimated_only_from_history(reports, console, fixed_cpu):
    [train, test] = runner.dry_run(RunRequest("pca", "smoke", reports=reports), console).cells
    assert train.seconds is None and train.source.startswith("cannot estimate: no earlier run")
    store_run(reports, "pca", records=[{"samples": 2000, "seconds": 1.5}, {"samples": 1000, "seconds": 0.5}])
    [train, test] = runner.dry_run(RunRequest("pca", "smoke", reports=reports), console).cells
    assert (train.seconds, test.seconds, test.source) == (1.5, 0.5, "history (1 earlier cell(s))")


def test_history_of_another_model_is_not_used(reports, console, fixed_cpu):
    record = {"model": "MLP Baseline Model", "device": "cpu", "flops": 1, "train_samples": 4500,
              "seconds_per_epoch": 2.0}  # same name, other architecture
    store_run(reports, "mlp_baseline", records=[record])
    [cell] = runner.dry_run(RunRequest("mlp_baseline", reports=reports), console).cells
    assert cell.source == "calibration 100 GFLOP/s (test)"


def test_the_warning_names_the_ways_out_only_for_long_cpu_work():
    suite, task, cells = plan(RunRequest("cnn_depth"))
    slow = estimate_run(task, suite, cells, None, lambda device: Throughput(device, 10.0, "test"))
    assert slow.seconds > 3600
    line = slow.warning()
    assert line.startswith("warning: this run is estimated at ") and "\n" not in line
    assert "profile=smoke" in line and "device=cuda" in line and "executor=ray" in line
    smoke_suite, _, smoke_cells = plan(RunRequest("cnn_depth", "smoke"))
    quick = estimate_run(task, smoke_suite, smoke_cells, None, lambda device: Throughput(device, 10.0, "test"))
    assert quick.seconds < 3600 and quick.warning() is None


def test_max_hours_refuses_a_long_run_before_anything_is_written(reports, console, mnist):
    request = request_from_arguments(["suite=cnn_depth", "model=Additional Model 8", "max_hours=1",
                                      f"reports={reports}"])
    with pytest.raises(UserError, match=r"max_hours=1: this run is estimated at .* raise max_hours"):
        runner.run(request, console)
    assert not reports.exists()


def test_options_are_checked():
    with pytest.raises(UserError, match="dry_run='yes': allowed: true, false"):
        request_from_arguments(["suite=pca", "dry_run=yes"])
    with pytest.raises(UserError, match="max_hours='soon': expected a number of hours"):
        request_from_arguments(["suite=pca", "max_hours=soon"])
    assert request_from_arguments(["suite=pca", "dry_run=true", "max_hours=0.5"]).max_hours == 0.5


def test_weights_follow_the_estimates():
    suite, task, cells = plan(RunRequest("cnn_depth"))
    estimated = estimate_run(task, suite, cells, None, lambda device: FIXED)
    weights = [estimated.weight(cell) for cell in cells]
    assert weights == [cell.seconds for cell in estimated.cells]
    assert weights[-1] / weights[0] > 100  # Model 8 against the baseline
    unknown = RunEstimate([estimate.CellEstimate(cell, None, None, "") for cell in cells[:2]])
    assert [unknown.weight(cell) for cell in cells[:2]] == [1.0, 1.0]


def store_run(reports, suite_name, records, calibration=None):
    """A finished earlier run of ``suite_name`` (smoke) in the store, with one cell per record."""
    import platform

    from harness import environment

    suite, task, cells = plan(RunRequest(suite_name, "smoke"))
    env = {"hostname": platform.node(), "calibration": {"version": 1, **(calibration or {})}}
    assert env["hostname"] == environment.collect()["hostname"]
    with ResultsStore(reports / "results.db") as store:
        info = RunInfo(f"20240101-000000-{suite.config_hash[:6]}", suite.name, "smoke", suite.config_hash, now(),
                       None, "running", suite.resolved(), env)
        run, _, _ = store.open_run(suite.name, suite.config_hash, None, lambda: info)
        for position, (cell, record) in enumerate(zip(cells, records)):
            store.save_cell(run.run_id, position, cell, CellResult("ok", record))
        store.update_run(run.run_id, status="complete")
