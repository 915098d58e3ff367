"""Tests for harness.compare.benchmark_export: statistics agree with pytest-benchmark's own, and its CLI reads the files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.compare.benchmark_export import (
    benchmark_stats,
    export,
    main,
    to_pytest_benchmark,
)
from tests.test_regression import synthetic_run

pytest_benchmark_stats = pytest.importorskip("pytest_benchmark.stats")


@pytest.mark.parametrize("values", [[3.0], [1.0, 2.0], [5.0, 1.0, 4.0, 2.0, 3.0], [1.0, 1.1, 0.9, 1.2, 5.0, 1.05, 0.95],
                                    [float(v) for v in range(1, 13)]])
def test_stats_match_pytest_benchmark(values):
    theirs = pytest_benchmark_stats.Stats()
    for value in values:
        theirs.update(value)
    ours = benchmark_stats(values)
    for field in pytest_benchmark_stats.Stats.fields:
        assert ours[field] == pytest.approx(getattr(theirs, field)) if field != "outliers" else ours[field] == theirs.outliers


def test_document_has_one_benchmark_per_row_with_pooled_rounds():
    document = to_pytest_benchmark(synthetic_run("run-a", seed=1, seeds=3, repeats=4))
    assert [b["name"] for b in document["benchmarks"]] == ["train_seconds[MLP-torch-cpu]", "train_seconds[CNN-torch-cpu]"]
    mlp = document["benchmarks"][0]
    assert mlp["stats"]["rounds"] == 12 and len(mlp["stats"]["data"]) == 12
    assert 9.0 < mlp["stats"]["median"] < 11.0
    assert mlp["extra_info"]["params"] == 1_796_010 and mlp["extra_info"]["seeds"] == [0, 1, 2]
    assert 97.0 < mlp["extra_info"]["test_accuracy"] < 98.0
    assert document["machine_info"]["calibration_seconds"] == 0.1 and document["commit_info"]["project"] == "harness"


def test_pytest_benchmark_compare_reads_the_export(tmp_path):
    cli = shutil.which("pytest-benchmark", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("pytest-benchmark's command line is not installed")
    old = export(synthetic_run("run-a", seed=1), tmp_path / "0001_old.json")
    new = export(synthetic_run("run-b", seed=2, slowdown=1.3), tmp_path / "0002_new.json")
    done = subprocess.run([cli, "compare", str(old), str(new), "--columns=min,median,max,rounds", "--group-by=name"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # One table per benchmark name, each with a row from both files (labelled by a shortened path).
    old_row = re.search(r"train_seconds\[CNN-torch-cpu\] \(\S*0001_old\)\s+([\d.]+) \(1\.0\)", done.stdout)
    new_row = re.search(r"train_seconds\[CNN-torch-cpu\] \(\S*0002_new\)\s+([\d.]+) \((1\.\d+)\)", done.stdout)
    assert old_row and new_row, done.stdout
    assert 1.2 < float(new_row.group(2)) < 1.45  # pytest-benchmark's own ratio column shows the 30 % slowdown
    assert "Failed to load" not in done.stderr


def test_module_entry_point_exports_a_run_folder(tmp_path, capsys):
    from harness.store import RunInfo, write_run_files

    run = RunInfo("r1", "demo", "smoke", "h", "2026-01-01T00:00:00", None, "complete", {}, {})
    write_run_files(tmp_path / "r1", run, [], ["model"])
    assert main([str(tmp_path / "r1"), str(tmp_path / "out.json")]) == 2  # nothing timed: a user error
    assert "no 'train_seconds' measurements" in capsys.readouterr().err
    assert main(["only-one-argument"]) == 2
    assert json.loads(json.dumps(to_pytest_benchmark(synthetic_run("r", seed=1))))["version"]


def test_export_holds_the_timing_the_suite_is_judged_on(tmp_path):
    from dataclasses import replace

    from harness.errors import UserError

    run = synthetic_run("run-a", seed=1)
    # pca and the perceptron time 'seconds' (their [regression] says so); they record no train_seconds.
    timed = replace(run, regression={"fail": "test_accuracy:-1.0,seconds:+10%"},
                    cells=[replace(cell, record={("seconds" if key == "train_seconds" else key): value
                                                 for key, value in cell.record.items()},
                                   samples={"seconds": cell.samples["train_seconds"]}) for cell in run.cells])
    document = json.loads(export(timed, tmp_path / "pca.json").read_text())
    assert [b["name"] for b in document["benchmarks"]] == ["seconds[MLP-torch-cpu]", "seconds[CNN-torch-cpu]"]
    assert document["benchmarks"][0]["stats"]["rounds"] == 12
    with pytest.raises(UserError, match="no 'train_seconds' measurements"):
        export(timed, tmp_path / "asked.json", "train_seconds")
