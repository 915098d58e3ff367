"""The results store: versioned, one commit per cell, atomic run files."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from harness import store as store_module
from harness.store import database
from harness.cells import Cell, CellResult
from harness.errors import StorageError, UserError
from harness.store import (
    Lease,
    ResultsStore,
    RunBusy,
    RunInfo,
    check_reports,
    read_run_file,
    write_run_files,
)


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



def test_a_run_read_from_its_results_file_is_the_run_in_the_store(tmp_path):
    needing = Cell("s", "search", "m", "torch", "cpu", 1, {"train": {"epochs": 1}}, {"trial": 2}, needs=("k1", "k2"))
    with ResultsStore(tmp_path / "results.db") as store:
        store.create_run(make_run())
        store.save_cell("r1", 0, needing, CellResult("ok", {"model": "m", "device": "cpu"}, {"history": [1]}))
        store.update_run("r1", status="complete", environment={"calibration": {"version": 1, "seconds": 0.5}})
        run, cells = store.run("r1"), store.cells("r1")
    write_run_files(tmp_path / "folder", run, cells, ("model",))
    assert read_run_file(tmp_path / "folder" / "results.json") == (run, cells)
    [stored] = read_run_file(tmp_path / "folder")[1]
    assert (stored.cell.needs, stored.cell.params, stored.result.artifacts) == (("k1", "k2"), {"trial": 2}, {"history": [1]})


# Leases: who is writing a run
def new_run(run_id="r9"):
    return lambda: make_run(run_id)


def test_a_live_run_is_not_claimed_twice_and_a_released_one_is(tmp_path):
    with ResultsStore(tmp_path / "results.db") as first, ResultsStore(tmp_path / "results.db") as second:
        run, resumed, passed = first.open_run("s", "abc", None, new_run("r1"))
        assert (run.run_id, resumed, passed) == ("r1", False, [])
        lease = first.lease("r1")
        assert (lease.pid, lease.host) == (os.getpid(), socket.gethostname()) and lease.live()
        # The same settings from another process: the live run is passed over, a new one started.
        run, resumed, passed = second.open_run("s", "abc", None, new_run("r2"))
        assert (run.run_id, resumed, [p.run_id for p in passed]) == ("r2", False, ["r1"])
        with pytest.raises(RunBusy, match=rf"resume=r1: that run is being written by pid {os.getpid()} on "):
            second.open_run("s", "abc", "r1", new_run())
        first.release("r1")
        assert first.lease("r1") is None
        run, resumed, _ = second.open_run("s", "abc", "r1", new_run())
        assert (run.run_id, resumed) == ("r1", True)
    with ResultsStore(tmp_path / "results.db") as store:  # closing released both
        assert store.lease("r1") is None and store.lease("r2") is None


@pytest.mark.parametrize("pid, host, age, live", [
    ("dead", "here", 0, False),  # the owner's process is gone: resumable at once
    ("self", "here", 0, True),
    ("self", "here", store_module.LEASE_TIMEOUT + 1, False),  # no heartbeat for too long
    (1, "another-host", 0, True),  # a pid elsewhere cannot be checked: the heartbeat decides
    (1, "another-host", store_module.LEASE_TIMEOUT + 1, False),
])
def test_a_lease_is_live_while_its_owner_runs_and_beats(pid, host, age, live):
    if pid == "dead":
        pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True).stdout
    pid = os.getpid() if pid == "self" else int(pid)
    host = socket.gethostname() if host == "here" else host
    assert Lease("r", "t", pid, host, time.time() - age).live() is live


def test_a_dead_owners_run_is_resumed_and_its_leftover_temporary_files_removed(tmp_path):
    with ResultsStore(tmp_path / "results.db") as store:
        store.create_run(make_run("r1"))
    with sqlite3.connect(tmp_path / "results.db") as db:
        db.execute("INSERT INTO leases VALUES ('r1', 't', 1, 'another-host', 'then', ?)",
                   (time.time() - store_module.LEASE_TIMEOUT - 1,))
    leftover = tmp_path / "s" / "r1" / ".results.csv.4242.tmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("half")
    with ResultsStore(tmp_path / "results.db") as store:
        run, resumed, passed = store.open_run("s", "abc", None, new_run())
        assert (run.run_id, resumed, passed) == ("r1", True, []) and store.lease("r1").host == socket.gethostname()
    assert not leftover.exists()


def test_the_leases_of_an_exited_container_are_forgotten_at_once(tmp_path):
    # A container's processes cannot be checked from the host; its launcher knows when it exited.
    with ResultsStore(tmp_path / "results.db") as store:
        store.create_run(make_run("r1"))
        store.create_run(make_run("r2"))
    with sqlite3.connect(tmp_path / "results.db") as db:
        db.execute("INSERT INTO leases VALUES ('r1', 't1', 7, 'container-1', 'then', ?)", (time.time(),))
        db.execute("INSERT INTO leases VALUES ('r2', 't2', 7, 'container-2', 'then', ?)", (time.time(),))
    with ResultsStore(tmp_path / "results.db") as store:
        assert store.lease("r1").live()
        store.forget_host("container-1")
        assert store.lease("r1") is None and store.lease("r2").live()
        run, resumed, passed = store.open_run("s", "abc", None, new_run())
        assert (run.run_id, resumed, [p.run_id for p in passed]) == ("r1", True, ["r2"])


def test_a_writer_that_lost_its_lease_writes_nothing(tmp_path):
    with ResultsStore(tmp_path / "results.db") as first, ResultsStore(tmp_path / "results.db") as second:
        first.open_run("s", "abc", None, new_run("r1"))
        with sqlite3.connect(tmp_path / "results.db") as db:  # as if the first stalled past the timeout
            db.execute("UPDATE leases SET heartbeat = 0")
        run, resumed, _ = second.open_run("s", "abc", None, new_run("r2"))
        assert (run.run_id, resumed) == ("r1", True)
        with pytest.raises(UserError, match=r"run r1: this process lost its lease .* now written by pid"):
            first.save_cell("r1", 0, make_cell("a"), CellResult("ok", {"model": "a"}))
        assert second.cells("r1") == []
        second.save_cell("r1", 0, make_cell("a"), CellResult("ok", {"model": "a"}))
        assert [s.cell.model for s in second.cells("r1")] == ["a"]


def test_a_schema_1_store_is_migrated(tmp_path):
    with sqlite3.connect(tmp_path / "results.db") as db:  # what harness with schema 1 wrote
        db.executescript(database._SCHEMA.split("CREATE TABLE IF NOT EXISTS leases")[0])
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        db.execute("INSERT INTO runs VALUES ('r1', 's', 'smoke', 'abc', 'then', NULL, 'running', '{}', '{}')")
    with ResultsStore(tmp_path / "results.db") as store:
        assert store.lease("r1") is None
        run, resumed, _ = store.open_run("s", "abc", None, new_run())
        assert (run.run_id, resumed) == ("r1", True)
    with sqlite3.connect(tmp_path / "results.db") as db:
        assert db.execute("SELECT value FROM meta").fetchone() == (str(store_module.SCHEMA_VERSION),)


def test_settled_status_is_partial_until_every_planned_cell_is_there(tmp_path):
    with ResultsStore(tmp_path / "results.db") as store:
        store.create_run(make_run())
        store.save_cell("r1", 0, make_cell("a"), CellResult("ok", {}))
        planned = [make_cell("a").key, make_cell("b").key]
        assert store.settled_status("r1", planned) == "partial"
        store.save_cell("r1", 1, make_cell("b"), CellResult("ok", {}))
        assert store.settled_status("r1", planned) == "complete"
        store.save_cell("r1", 1, make_cell("b"), CellResult("failed", {}, {}, "boom"))
        assert store.settled_status("r1", planned) == "failed"


def test_a_corrupt_store_is_one_line(tmp_path):
    (tmp_path / "results.db").write_bytes(b"garbage" * 1000)
    with pytest.raises(UserError, match=r"results.db: corrupt \(file is not a database\); move it aside"):
        ResultsStore(tmp_path / "results.db")
    with pytest.raises(UserError, match=r"results.db: corrupt \(file is not a database\); move it aside"):
        check_reports(tmp_path)


# Storage faults: a full disk is one error naming the store, and the store stays consistent
def test_a_full_disk_mid_commit_is_a_storage_error_and_keeps_the_committed_cells(tmp_path):
    path = tmp_path / "results.db"
    with ResultsStore(path) as store:
        store.create_run(make_run())
        store.save_cell("r1", 0, make_cell("a"), CellResult("ok", {"model": "a"}))
        # The stand-in for a full disk that needs no mount: SQLite may not grow the file any more.
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StorageError) as raised:
            store.save_cell("r1", 1, make_cell("b"), CellResult("ok", {"model": "b", "big": "x" * 100_000}))
        assert (raised.value.path, raised.value.cause) == (path, "no space left on device")  # not "cannot rollback"
        assert raised.value.exit_code == 3 and not store._db.in_transaction
        assert [s.cell.model for s in store.cells("r1")] == ["a"]
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0


def test_a_store_on_a_full_filesystem_is_a_storage_error(small_filesystem):
    folder = small_filesystem("64k")
    with ResultsStore(folder / "results.db") as store:
        store.create_run(make_run())
        with pytest.raises(StorageError, match=f"^{folder / 'results.db'}: no space left on device; finished cells"):
            for position in range(100):
                store.save_cell("r1", position, make_cell(f"m{position}"),
                                CellResult("ok", {"model": "m", "big": "x" * 8_000}))
        kept = len(store.cells("r1"))
    with contextlib.closing(sqlite3.connect(folder / "results.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == kept > 0
