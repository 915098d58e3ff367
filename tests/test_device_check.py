"""benchmarks/device_check.py: the GPU check's CPU dry run, so that the one command a GPU machine gets cannot rot,
and its parts (the results diff, the JUnit counts, the goals, the time limit) on small inputs."""

from __future__ import annotations

import gzip
import json
import sys
import time
from argparse import Namespace

import pytest

from benchmarks import device_check


@pytest.mark.slow
def test_the_dry_run_runs_every_step_and_writes_its_figures(tmp_path):
    out = tmp_path / "out"
    assert device_check.main(["--tiny", "--out", str(out), "--work", str(tmp_path / "work")]) == 0
    report = json.loads((out / "device_check.json").read_text())
    # Only three files: what comes back from a GPU machine is limited to a few.
    assert sorted(path.name for path in out.iterdir()) == ["device_check.json", "device_check.log", "device_check.md"]
    steps = {step["name"]: step for step in report["steps"]}
    assert list(steps) == list(device_check.STEPS)
    assert {name: step["status"] for name, step in steps.items()} == dict.fromkeys(device_check.STEPS, "passed")
    assert report["failed"] == [] and report["device"] == "cpu" and report["tiny"] is True

    assert "perceptron" in steps["setup"]["figures"]["tasks"]
    assert steps["setup"]["figures"]["datasets"] == {"mnist": "ok", "fashion_mnist": "ok"}
    tests = steps["cuda_tests"]["figures"]
    assert tests["skipped"] >= 2 and tests["failed"] == tests["errors"] == 0  # no GPU here: skipped, not failed
    rows = steps["bench_epoch"]["figures"]["rows"]
    assert [row["model"] for row in rows] == ["mlp_baseline", "cnn_baseline"]
    assert all(row["plain"] > 0 and row["harness"] > 0 and row["ratio"] > 0 for row in rows)
    profiled = steps["profile"]["figures"]["results"]
    assert [(entry["model"], entry["side"]) for entry in profiled] == [
        ("mlp_baseline", "harness"), ("mlp_baseline", "plain"),
        ("cnn_baseline", "harness"), ("cnn_baseline", "harness, NCHW"), ("cnn_baseline", "plain")]
    assert {entry["device_busy_seconds"] for entry in profiled} == {None}  # no GPU: host operations only
    assert all(entry["wall_seconds"] > 0 and entry["host"][0]["self_us"] > 0 for entry in profiled)

    pair = steps["deterministic"]["figures"]
    assert pair["identical"] is True and pair["differences"] == []
    assert {"test_accuracy", "final_train_loss", "deterministic"} <= set(pair["compared_columns"])
    assert not set(device_check.TIMING_COLUMNS) & set(pair["compared_columns"])
    assert pair["recorded_deterministic"] == {"deterministic_a": ["True"], "deterministic_b": ["True"],
                                              "default": ["False"]}
    (cost,) = pair["cost"]
    assert cost["model"] == "MLP Baseline Model" and cost["default_seconds"] > 0 and cost["ratio"] > 0

    study = steps["study"]["figures"]
    (member,) = study["members"]
    assert member["suite"] == "mlp_baseline" and member["status"] == "complete" and member["cells_ok"] == 1
    assert study["complete"] is True and study["total_seconds"] == member["wall_seconds"] > 0

    goals = {goal["goal"]: goal for goal in report["goals"]}
    assert goals["two deterministic runs agree in every non-timing column"]["met"] is True
    page = (out / "device_check.md").read_text()
    assert "## Goals" in page and "| mlp_baseline | complete |" in page and "## Deterministic mode" in page


def rows(**changes):
    row = {"model": "M", "test_accuracy": "97.5", "final_train_loss": "0.125", "train_seconds": "3.0"}
    return {"mlp_baseline": [{**row, **changes}]}


def test_the_results_diff_names_each_differing_column_and_ignores_timings():
    assert device_check.diff_rows(rows(), rows(train_seconds="9.0")) == []
    assert device_check.diff_rows(rows(), rows(test_accuracy="97.49", train_seconds="9.0")) == [
        {"suite": "mlp_baseline", "row": "M", "column": "test_accuracy", "a": "97.5", "b": "97.49"}]
    assert device_check.diff_rows(rows(), {"mlp_baseline": []})[0] == {
        "suite": "mlp_baseline", "row": "*", "column": "rows", "a": 1, "b": 0}


def test_junit_counts_passes_failures_and_skips(tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite tests="4" failures="1" errors="0" skipped="1">'
        '<testcase classname="tests.test_a" name="test_ok"/><testcase classname="tests.test_a" name="test_ok2"/>'
        '<testcase classname="tests.test_a" name="test_bad"><failure message="no"/></testcase>'
        '<testcase classname="tests.test_a" name="test_gpu"><skipped/></testcase></testsuite></testsuites>')
    assert device_check.junit_counts(report) == {"passed": 2, "failed": 1, "errors": 0, "skipped": 1,
                                                 "failures": ["tests.test_a::test_bad"]}


def test_a_study_cut_by_the_budget_is_reported_as_measured_so_far():
    study = device_check.StepResult("study", "partial", figures={
        "study": "report", "complete": False, "total_seconds": 250.0,
        "members": [{"suite": "pca", "status": "complete"}, {"suite": "cnn_depth", "status": "running"}]})
    (goal,) = device_check.goals([study])
    assert goal == {"goal": "the whole study (report) in under 600 s",
                    "value": "250 s for 1 of 2 members (cut by the budget)", "met": None}


def test_a_child_past_its_limit_is_interrupted_and_reported(tmp_path):
    args = Namespace(out=tmp_path, tiny=True, budget=60.0, datasets=None, device="cpu")
    check = device_check.Check(args, tmp_path)
    check.log.write_text("")
    started = time.monotonic()
    child = check.child("sleeper", [sys.executable, "-c", "print('started', flush=True); import time; time.sleep(60)"],
                        limit=1.0)
    assert child.timed_out and child.code != 0 and time.monotonic() - started < 15
    assert "started" in child.tail and "===== sleeper" in check.log.read_text()
    assert device_check.failure(child).startswith("out of time after 1 s")


def test_gzipped_datasets_are_unpacked_beside_each_other(tmp_path):
    source = tmp_path / "packed" / "mnist"
    source.mkdir(parents=True)
    (source / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01labels"))
    assert device_check.unpack_datasets(tmp_path / "packed", tmp_path / "data") == ["mnist/t10k-labels-idx1-ubyte"]
    assert (tmp_path / "data" / "mnist" / "t10k-labels-idx1-ubyte").read_bytes() == b"\x00\x00\x08\x01labels"
