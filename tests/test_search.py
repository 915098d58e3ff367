"""Tests for the architecture search: proposals, ranking, and a search that resumes after a kill.

Training is stubbed (a trial's validation accuracy grows with its widths), so these run in seconds
without data; the smoke suites train for real in ``harness run suite=mlp_search profile=smoke``.
"""

from __future__ import annotations

import csv

import pytest
from pydantic import ValidationError

from harness import runner
from harness.paper.algorithms.search_space import (
    SearchSpace,
    TrialResult,
    build_spec,
    propose,
    rank,
)
from harness.executors.local import run_cell
from harness.runner import RunRequest
from harness.store import ResultsStore
from harness.paper.tasks import search as search_task
from harness.tasks.training import spec_columns


def space(**changes) -> SearchSpace:
    settings = {"family": "mlp", "depths": [1, 2], "width_min": 8, "width_max": 64, "width_step": 8,
                "trials_per_depth": 3, "seed": 0}
    return SearchSpace.model_validate({**settings, **changes})


def test_the_families_rebuild_the_reports_models():
    # Table 3.2's Additional Model 1 and Table 4.4's Models 1 and 8, parameter for parameter.
    assert build_spec("mlp", [992, 544], None, "m1").params == 1_324_362
    assert build_spec("cnn", [192, 96], [3, 4], "c1").params == 804_778
    assert build_spec("cnn", [224, 480, 288, 256, 512], [2, 3, 2, 2, 3], "c8").params == 5_255_786


def test_proposals_are_reproducible_and_inside_the_space():
    trials = propose(space())
    assert [t.name for t in trials] == [f"depth {d} trial {i}" for d in (1, 2) for i in (1, 2, 3)]
    assert [t.spec for t in trials] == [t.spec for t in propose(space())]
    for trial in trials:
        assert trial.spec.depth == trial.depth
        assert all(8 <= w <= 64 and w % 8 == 0 for w in trial.spec.hidden_widths)
    assert len({tuple(t.spec.hidden_widths) for t in trials}) > 1  # it does sample


def test_more_depths_or_trials_leave_earlier_proposals_unchanged():
    first = {t.name: t.spec for t in propose(space())}
    wider = {t.name: t.spec for t in propose(space(depths=[1, 2, 3], trials_per_depth=5))}
    assert all(wider[name] == spec for name, spec in first.items())
    assert {t.name: t.spec for t in propose(space(seed=1))} != first


def test_cnn_proposals_draw_kernels_from_the_list():
    trials = propose(space(family="cnn", depths=[3], kernels=[2, 4]))
    kernels = {layer.kernel for t in trials for layer in t.spec.layers if layer.type == "conv2d"}
    assert kernels <= {2, 4}


def test_space_rejects_impossible_settings():
    with pytest.raises(ValidationError, match="do not fit a 28x28 image"):
        space(family="cnn", depths=[10], kernels=[4])
    with pytest.raises(ValidationError, match="below width_min"):
        space(width_min=64, width_max=32)


def test_rank_picks_the_best_and_worst_of_each_depth():
    results = [TrialResult(2, 1, 95.0), TrialResult(1, 1, 90.0), TrialResult(2, 2, 97.5), TrialResult(1, 2, 91.0),
               TrialResult(2, 3, 93.2), TrialResult(1, 3, 89.9)]
    ranked = rank(results)
    assert list(ranked) == [1, 2]
    assert [(r.depth, r.index) for r in ranked[1]] == [(1, 2), (1, 3)]
    assert [(r.depth, r.index) for r in ranked[2]] == [(2, 2), (2, 3)]


def test_rank_breaks_ties_by_trial_order_whatever_the_arrival_order():
    tied = [TrialResult(1, 3, 90.0), TrialResult(1, 1, 90.0), TrialResult(1, 2, 90.0)]
    best, worst = rank(tied)[1]
    assert (best.index, worst.index) == (1, 3)
    assert rank(reversed(tied))[1] == (best, worst)
    assert rank([]) == {}


SUITE = """
title = "Tiny search"
task = "search"
mirrors = "Table 3.2"

[data]
dataset = "mnist"

[options]
trial_epochs = 1

[options.space]
family = "mlp"
depths = [1, 2]
width_min = 8
width_max = 64
width_step = 8
trials_per_depth = 3

[profiles.smoke]
[profiles.full]
"""


@pytest.fixture
def stubbed(monkeypatch):
    """Training replaced by a score that grows with the widths; records every model trained."""
    trained: list[str] = []

    def train_model(cell, entry, suite, epochs, observer):
        trained.append(cell.model)
        score = 50.0 + sum(entry.hidden_widths) / 10
        record = {**spec_columns(entry), "epochs": epochs, "val_accuracy": score, "test_accuracy": score - 1,
                  "train_accuracy": score + 1, "train_seconds": 0.01, "device": "cpu"}
        return record, {}

    monkeypatch.setattr(search_task, "train_model", train_model)
    monkeypatch.setattr(search_task.SearchTask, "uses_dataset", False)  # nothing reads MNIST here
    return trained


def test_a_killed_search_resumes_without_redoing_finished_trials(tmp_path, stubbed, console, stop_after, fixed_calibration):
    suite_file = tmp_path / "tiny_search.toml"
    suite_file.write_text(SUITE)
    reports = tmp_path / "reports"
    request = RunRequest(str(suite_file), "smoke", reports=reports)

    with pytest.raises(KeyboardInterrupt):
        runner.run(request, console, stop_after(4))  # killed as the fifth cell starts
    assert stubbed == ["depth 1 trial 1", "depth 1 trial 2", "depth 1 trial 3", "depth 2 trial 1"]

    stubbed.clear()
    outcome = runner.run(RunRequest(str(suite_file), "smoke", reports=reports), console)
    assert (outcome.ran, outcome.skipped) == (6, 4)
    assert stubbed == ["depth 2 trial 2", "depth 2 trial 3",
                       "depth 1 best", "depth 1 worst", "depth 2 best", "depth 2 worst"]
    with ResultsStore(reports / "results.db") as store:
        assert store.run(outcome.run.run_id).status == "complete"

    with open(outcome.folder / "results.csv") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    trials = {t.name: t for t in propose(space())}
    for depth in (1, 2):
        names = [f"depth {depth} trial {i}" for i in (1, 2, 3)]
        widest = max(names, key=lambda name: sum(trials[name].spec.hidden_widths))
        narrowest = min(names, key=lambda name: sum(trials[name].spec.hidden_widths))
        assert rows[f"depth {depth} best"]["configuration"] == rows[widest]["configuration"]
        assert rows[f"depth {depth} worst"]["configuration"] == rows[narrowest]["configuration"]
    table = (outcome.folder / "table.md").read_text()
    assert "depth 2 best (trial" in table and (outcome.folder / "trials.png").stat().st_size > 0


def test_retrain_cells_name_the_trials_of_their_own_backend_and_seed(tmp_path):
    suite_file = tmp_path / "tiny_search.toml"
    suite_file.write_text(SUITE + '\n[matrix]\nseeds = [0, 1]\n')
    _, task, cells = runner.plan(RunRequest(str(suite_file), "smoke", reports=tmp_path))
    retrains = [cell for cell in cells if cell.params["phase"] == "retrain"]
    assert len(retrains) == 8  # 2 depths x best/worst x 2 seeds
    for cell in retrains:
        assert len(cell.needs) == 6
        assert all(f"|seed={cell.seed}|" in key and "phase=trial" in key for key in cell.needs)
    assert all(not cell.needs for cell in cells if cell.params["phase"] != "retrain")


def test_a_retrain_cell_picks_from_the_records_it_is_handed_not_from_files(tmp_path, stubbed, console):
    # What a cell on another machine sees: an empty scratch folder and the trials' records.
    suite_file = tmp_path / "tiny_search.toml"
    suite_file.write_text(SUITE)
    _, _, cells = runner.plan(RunRequest(str(suite_file), "smoke", reports=tmp_path))
    by_model = {cell.model: cell for cell in cells}
    retrain = by_model["depth 1 best"]
    accuracies = {"depth 1 trial 1": 91.0, "depth 1 trial 2": 97.0}  # trial 3 failed: not handed over
    inputs = {by_model[name].key: {"depth": 1, "trial": int(name[-1]), "val_accuracy": accuracy}
              for name, accuracy in accuracies.items()}
    from harness.cells import RunContext
    from harness.progress import RunProgress

    context = RunContext(tmp_path / "scratch", RunProgress(console, 1), tmp_path, inputs=inputs)
    result = run_cell(retrain, context)
    assert result.ok, result.error
    assert (result.record["trial"], result.record["trial_val_accuracy"]) == (2, 97.0)
    worst = run_cell(by_model["depth 1 worst"], context)
    assert worst.record["trial"] == 1
    missing = run_cell(by_model["depth 2 best"], context)
    assert missing.status == "failed" and "no finished trial of depth 2" in missing.error
