"""End to end: smoke runs on real MNIST, resume after an interruption, a failing cell, bad input."""

from __future__ import annotations

import csv
import json

import pytest

from harness import runner
from harness.commands.run import request_from_arguments
from harness.errors import UserError
from harness.runner import RunRequest
from harness.store import ResultsStore
from harness.suite.overrides import Override

pytestmark = pytest.mark.slow


def rows(folder):
    with open(folder / "results.csv") as handle:
        return list(csv.DictReader(handle))


def test_mlp_baseline_smoke(reports, mnist, console):
    outcome = runner.run(RunRequest("mlp_baseline", "smoke", reports=reports), console)
    [row] = rows(outcome.folder)
    assert row["params"] == "1796010" and row["status"] == "ok"
    assert (row["train_samples"], row["val_samples"], row["test_samples"]) == ("4500", "500", "2000")
    assert float(row["test_accuracy"]) > 85  # chance is 10%
    assert float(row["train_seconds"]) > 0 and row["epochs"] == "1"
    document = json.loads((outcome.folder / "results.json").read_text())
    assert document["config"]["train"]["epochs"] == 1 and document["environment"]["torch"]
    assert len(document["cells"][0]["artifacts"]["history"]) == 1
    for name in ("table.md", "table.csv", "accuracy_vs_params.png", "time_vs_params.png", "time_vs_depth.png"):
        assert (outcome.folder / name).stat().st_size > 0
    assert "| MLP Baseline Model | torch | cpu | 1,796,010 | 1,796,010 |" in (outcome.folder / "table.md").read_text()
    assert (reports / "mlp_baseline" / "latest").resolve() == outcome.folder.resolve()


def test_cnn_baseline_smoke(reports, mnist, console):
    outcome = runner.run(RunRequest("cnn_baseline", "smoke", reports=reports), console)
    found = rows(outcome.folder)
    assert [r["model"] for r in found] == ["CNN Baseline Model", "CNN Baseline Model (4 epochs)"]
    assert all(r["params"] == "185066" and r["epochs"] == "1" for r in found)
    assert all(float(r["test_accuracy"]) > 80 for r in found)
    cell_folders = list((outcome.folder / "cells").iterdir())
    assert all((folder / "learning_curves.png").exists() and (folder / "confusion_matrix.png").exists()
               for folder in cell_folders)


def small(suite, **extra):
    overrides = [Override("data.train_samples", 600), Override("data.test_samples", 200)]
    return RunRequest(suite, "smoke", overrides=overrides, **extra)


def test_interrupted_run_resumes_without_redoing_or_duplicating_cells(reports, mnist, console, stop_after):
    with pytest.raises(KeyboardInterrupt):
        runner.run(small("mlp_depth", reports=reports), console, stop_after(2))
    with ResultsStore(reports / "results.db") as store:
        [first] = store.runs("mlp_depth")
        before = {s.cell.key: s.result.record for s in store.cells(first.run_id)}
    assert len(before) == 2 and first.status == "running"

    outcome = runner.run(small("mlp_depth", reports=reports), console)
    assert outcome.run.run_id == first.run_id and (outcome.ran, outcome.skipped) == (7, 2)
    found = rows(outcome.folder)
    assert len(found) == 9 and len({r["model"] for r in found}) == 9
    with ResultsStore(reports / "results.db") as store:
        after = {s.cell.key: s.result.record for s in store.cells(first.run_id)}
        assert store.run(first.run_id).status == "complete"
    assert all(after[key] == record for key, record in before.items())  # finished cells untouched

    again = runner.run(small("mlp_depth", reports=reports), console)
    assert again.run.run_id != first.run_id  # a complete run is not resumed: a new one starts


def test_a_failing_cell_is_stored_and_the_others_still_run(reports, mnist, console, monkeypatch):
    from harness.backends.torch import TorchBackend

    real_fit = TorchBackend.fit

    def fit(self, model, splits, train, **kwargs):
        if sum(p.numel() for p in model.parameters()) == 795010:
            raise FloatingPointError("loss became nan")
        return real_fit(self, model, splits, train, **kwargs)

    monkeypatch.setattr(TorchBackend, "fit", fit)
    outcome = runner.run(small("mlp_vs_cnn", reports=reports), console)
    found = {r["model"]: r for r in rows(outcome.folder)}
    assert found["MLP Bonus Model"]["status"] == "failed"
    assert found["MLP Bonus Model"]["error"] == "FloatingPointError: loss became nan"
    assert found["CNN Bonus Model"]["status"] == "ok" and float(found["CNN Bonus Model"]["test_accuracy"]) > 20
    assert len(outcome.failed) == 1


def test_shortcuts_become_suite_overrides():
    request = request_from_arguments(["suite=mlp_baseline", "backend=all", "device=cpu", "seed=3", "train.epochs=2",
                                      "deterministic=true"])
    assert [(o.key, o.value) for o in request.overrides] == [
        ("matrix.backends", ["torch", "tensorflow"]), ("matrix.devices", ["cpu"]), ("matrix.seeds", [3]),
        ("train.deterministic", True), ("train.epochs", 2)]


def test_unknown_model_filter_is_a_user_error(reports, console):
    with pytest.raises(UserError, match=r"model=Nope: not in suite mlp_baseline; models: MLP Baseline Model"):
        runner.run(RunRequest("mlp_baseline", "smoke", models=["Nope"], reports=reports), console)
    assert not reports.exists()
