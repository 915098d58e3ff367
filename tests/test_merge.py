"""``harness merge``: runs of two machines' stores brought into one, idempotently, conflicts refused."""

from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest

from harness.cli import main as cli_main
from harness.errors import UserError
from harness.history.merge import merge
from harness.history.site import publish
from harness.store import ResultsStore
from tests.history_runs import stored_run


def dump(database) -> str:
    """The store's whole content, as SQL: equal dumps, equal stores."""
    db = sqlite3.connect(database)
    try:
        return hashlib.sha256("\n".join(db.iterdump()).encode()).hexdigest()
    finally:
        db.close()


@pytest.fixture
def two_machines(tmp_path, monkeypatch):
    """Two reports folders, three runs on box-a and two on box-b (each folder a machine)."""
    a, b = tmp_path / "box-a", tmp_path / "box-b"
    for night in range(3):
        stored_run(a, f"a{night}", night, "box-a", monkeypatch=monkeypatch)
    for night in range(2):
        stored_run(b, f"b{night}", night, "box-b", seconds=20.0, monkeypatch=monkeypatch)
    return a, b


def test_two_machines_merge_into_one_store_and_the_site_shows_both(two_machines, tmp_path):
    a, b = two_machines
    target = tmp_path / "team"
    report = merge(target, [a, b / "results.db"])
    assert sorted(report.added) == ["a0", "a1", "a2", "b0", "b1"] and report.unchanged == []
    with ResultsStore(target / "results.db") as store:
        assert [r.run_id for r in store.runs()] == ["a0", "b0", "a1", "b1", "a2"]
        assert len(store.cells("b1")) == 4
        assert store.run("b1").environment["machine"] == "box-b"
        with ResultsStore(b / "results.db") as source:
            assert store.cells("b1") == source.cells("b1") and store.run("b1") == source.run("b1")
    assert (target / "demo" / "a2" / "results.json").is_file()  # the run folders came along

    site = publish(target, tmp_path / "site")
    page = (tmp_path / "site" / "demo.html").read_text()
    assert site.runs == 5 and "torch/cpu @ box-a" in page and "torch/cpu @ box-b" in page
    assert page.count('href="runs/demo/b1.html"') == 1 + 2 * 3  # calibration, 2 backends x 3 metrics


def test_merging_again_changes_nothing(two_machines, tmp_path):
    a, b = two_machines
    target = tmp_path / "team"
    merge(target, [a, b])
    before = dump(target / "results.db")
    again = merge(target, [b, a, a / "results.db"])
    assert again.added == [] and sorted(again.unchanged) == ["a0", "a1", "a2", "b0", "b1"]
    assert dump(target / "results.db") == before


def test_a_run_id_with_different_content_is_refused_and_nothing_is_written(two_machines, tmp_path, monkeypatch):
    a, b = two_machines
    target = tmp_path / "team"
    merge(target, [a])
    before = dump(target / "results.db")
    stored_run(b, "a1", 1, "box-b", seconds=11.0, monkeypatch=monkeypatch)  # the same id, another measurement
    with pytest.raises(UserError, match=r"^run a1 differs between .*box-b and .*team/results.db: .*nothing was merged"):
        merge(target, [b])
    assert dump(target / "results.db") == before and not (target / "demo" / "b0").exists()
    # Two sources disagreeing with each other are refused the same way.
    with pytest.raises(UserError, match="run a1 differs between"):
        merge(tmp_path / "fresh", [a, b])
    assert not (tmp_path / "fresh" / "results.db").exists()


def test_a_run_still_being_written_is_not_merged(tmp_path, monkeypatch):
    source = tmp_path / "src"
    stored_run(source, "done", 0, "box-a")
    stored_run(source, "live", 1, "box-a", status="running")
    with ResultsStore(source / "results.db") as store:
        store.open_run("demo", "cafe01", "live", lambda: None)  # this process now writes it
        report = merge(tmp_path / "team", [source])
    assert report.added == ["done"]
    (skipped,) = report.skipped
    assert skipped.startswith(f"{source}: run live is being written by pid {os.getpid()} on ")
    assert skipped.endswith("; not merged")


def test_run_folders_without_a_store_are_merged_from_their_results_json(two_machines, tmp_path):
    a, _ = two_machines
    (a / "results.db").rename(tmp_path / "aside.db")
    report = merge(tmp_path / "team", [a])
    assert sorted(report.added) == ["a0", "a1", "a2"]
    # The same runs from the store itself are then recognised as unchanged.
    assert sorted(merge(tmp_path / "team", [tmp_path / "aside.db"]).unchanged) == ["a0", "a1", "a2"]


def test_the_command_line(two_machines, tmp_path, capsys):
    a, b = two_machines
    assert cli_main(["merge", str(a), str(b), f"reports={tmp_path / 'team'}"]) == 0
    assert "5 run(s) added, 0 already here unchanged, 0 not merged" in capsys.readouterr().out
    assert cli_main(["merge", f"reports={tmp_path / 'team'}"]) == 2
    assert cli_main(["merge", str(tmp_path / "nowhere"), f"reports={tmp_path / 'team'}"]) == 2
    assert "merge source" in capsys.readouterr().err
