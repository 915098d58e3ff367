"""The results store: versioned, one commit per cell, atomic run files."""

from __future__ import annotations

import json
import sqlite3

import pytest

from harness.cells import Cell, CellResult
from harness.errors import UserError
from harness.store import ResultsStore, RunInfo, read_run_file, write_run_files


def make_run(run_id="r1", suite="s", status="running", config_hash="abc"):
    return RunInfo(run_id, suite, "smoke", config_hash, f"2026-01-01T00:00:0{run_id[-1]}+00:00", None, status,
                   {"train": {"epochs": 1}}, {"python": "3.11"})


def make_cell(model="m", seed=0):
    return Cell("s", "classify", model, "torch", "cpu", seed, {"train": {"epochs": 1}})


def test_cells_round_trip_and_failed_cells_are_not_finished(tmp_path):
    with ResultsStore(tmp_path / "results.db") as store:
        store.create_run(make_run())
        store.save_cell("r1", 0, make_cell("a"), CellResult("ok", {"model": "a", "test_accuracy": 97.5},
                                                             {"history": [1, 2]}))
        store.save_cell("r1", 1, make_cell("b"), CellResult("failed", {"model": "b"}, {}, "boom"))
        assert store.finished_keys("r1") == {make_cell("a").key}
        [a, b] = store.cells("r1")
        assert a.record == {"model": "a", "test_accuracy": 97.5} and a.result.artifacts == {"history": [1, 2]}
        assert (b.result.status, b.result.error) == ("failed", "boom")
        # retrying a failed cell replaces it: no duplicates
        store.save_cell("r1", 1, make_cell("b"), CellResult("ok", {"model": "b"}))
        assert [s.result.status for s in store.cells("r1")] == ["ok", "ok"]


def test_latest_unfinished_run_of_the_same_settings(tmp_path):
    with ResultsStore(tmp_path / "results.db") as store:
        store.create_run(make_run("r1", status="complete"))
        store.create_run(make_run("r2", config_hash="other"))
        store.create_run(make_run("r3"))
        assert store.latest_run("s", "abc", unfinished=True).run_id == "r3"
        store.update_run("r3", status="complete")
        assert store.latest_run("s", "abc", unfinished=True) is None
        assert store.latest_run("s").run_id == "r3" and store.run("r3").finished


def test_a_store_from_a_newer_harness_is_refused(tmp_path):
    ResultsStore(tmp_path / "results.db").close()
    with sqlite3.connect(tmp_path / "results.db") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(UserError, match="written by a newer harness \\(schema 99"):
        ResultsStore(tmp_path / "results.db")


def test_run_files_are_written_whole_and_read_back(tmp_path):
    cell = make_cell()
    result = CellResult("ok", {"suite": "s", "model": "m", "test_accuracy": float("nan"), "params": 10})
    from harness.cells import StoredCell

    write_run_files(tmp_path, make_run(), [StoredCell(cell, result)], ("suite", "model", "params"))
    assert (tmp_path / "results.csv").read_text().splitlines() == ["suite,model,params,test_accuracy", "s,m,10,"]
    assert not list(tmp_path.glob(".*tmp"))
    run, [stored] = read_run_file(tmp_path)
    assert run.run_id == "r1" and stored.cell == cell and stored.record["test_accuracy"] is None
    document = json.loads((tmp_path / "results.json").read_text())
    document["schema_version"] = 7
    (tmp_path / "results.json").write_text(json.dumps(document))
    with pytest.raises(UserError, match="schema version 7; this harness reads 1..2"):
        read_run_file(tmp_path)
