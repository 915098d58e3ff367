"""The runner's reliability: bad input found before any work, owned runs, partial runs, kill -9 anywhere.

The runs use a tiny classify suite (4 small MLPs on 600 MNIST images) so each takes seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.fault_injection import inject, write_suite
from harness import cli, runner
from harness.cells import Cell, RunContext
from harness.errors import UserError
from harness.runner import RunRequest
from harness.store import ResultsStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tiny(tmp_path):
    """The path of a suite of 4 tiny MLPs ("Net A", "Net_A", "Net 2", "Net 3")."""
    return str(write_suite(tmp_path / "suites", models=4))


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if calibration or the data check is reached: the error must come before them."""
    from harness import data
    from harness import calibration

    def reached(*args, **kwargs):
        raise AssertionError("calibration or data check ran before the error")

    monkeypatch.setattr(calibration, "calibrate", reached)
    monkeypatch.setattr(data, "ensure", reached)


def harness_main(capsys, *argv):
    """Exit code and stderr of ``harness run ARGV``, in this process."""
    code = cli.main(["run", *argv])
    return code, capsys.readouterr().err


def files_under(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


# Defect 2: sample counts beyond the dataset
@pytest.mark.parametrize("setting, message", [
    ("data.train_samples=10000000", "data.train_samples: 10,000,000 is more than mnist has; allowed: 1 to 60,000"),
    ("data.test_samples=10001", "data.test_samples: 10,001 is more than mnist has; allowed: 1 to 10,000"),
])
def test_sample_counts_beyond_the_dataset_fail_when_the_suite_loads(reports, capsys, no_work, setting, message):
    code, err = harness_main(capsys, "suite=mlp_baseline", "profile=smoke", setting)
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not reports.exists()


def test_dataset_sizes_match_the_files(mnist):
    from harness import data
    from harness.suite.schema import DATASET_SIZES

    fashion = data.load("fashion_mnist")
    for name, dataset in (("mnist", mnist), ("fashion_mnist", fashion)):
        assert DATASET_SIZES[name] == {"train": len(dataset.train_labels), "test": len(dataset.test_labels)}


# Defect 4: the reports folder and the store, checked before any work
def test_reports_naming_a_file(tmp_path, capsys, no_work):
    (tmp_path / "afile").write_text("mine")
    code, err = harness_main(capsys, "suite=mlp_baseline", "profile=smoke", f"reports={tmp_path / 'afile'}")
    assert code == 2 and f"reports={tmp_path / 'afile'} is a file, not a folder" in err
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_container_run_checks_the_reports_folder_before_any_image_is_built(tmp_path, capsys, monkeypatch):
    from harness import container

    monkeypatch.setattr(container, "launch", lambda *args, **kwargs: pytest.fail("the container was launched"))
    (tmp_path / "afile").write_text("mine")
    code, err = harness_main(capsys, "suite=mlp_baseline", "container=cpu", f"reports={tmp_path / 'afile'}")
    assert code == 2 and f"reports={tmp_path / 'afile'} is a file, not a folder" in err


def test_a_corrupt_store_is_refused_and_left_alone(reports, capsys, no_work):
    reports.mkdir()
    (reports / "results.db").write_bytes(b"not sqlite at all" * 100)
    before = files_under(reports)
    code, err = harness_main(capsys, "suite=mlp_baseline", "profile=smoke")
    assert code == 2 and len(err.splitlines()) == 1
    assert f"results store {reports / 'results.db'}: corrupt (file is not a database)" in err
    assert files_under(reports) == before


def read_only_run(target: Path, *argv: str) -> subprocess.CompletedProcess:
    """``harness run ARGV`` in a subprocess that cannot write ``target``.

    Root writes through file modes, so as root ``target`` is bind-mounted read-only in a mount
    namespace of the subprocess's own (nothing outside it changes); otherwise its mode is cleared.
    """
    command = [sys.executable, "-m", "harness", "run", *argv]
    environment = {**os.environ, "HARNESS_THREADS": "1"}
    if os.geteuid() != 0:
        mode = target.stat().st_mode
        target.chmod(0o555 if target.is_dir() else 0o444)
        try:
            return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
        finally:
            target.chmod(mode)
    if not shutil.which("unshare") or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("running as root without mount namespaces: nothing can be made read-only for root")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return subprocess.run(["unshare", "-m", "sh", "-c", script, str(target), *command], cwd=ROOT, env=environment,
                          capture_output=True, text=True)


@pytest.mark.parametrize("case", ["folder", "subfolder", "store"])
def test_read_only_reports_are_one_line_and_exit_2(tmp_path, case):
    reports = tmp_path / "reports"
    reports.mkdir()
    if case == "store":
        ResultsStore(reports / "results.db").close()
    before = files_under(reports)
    target = {"folder": reports, "subfolder": reports, "store": reports / "results.db"}[case]
    named = reports / "sub" if case == "subfolder" else reports
    done = read_only_run(target, "suite=mlp_baseline", "profile=smoke", f"reports={named}")
    expected = {
        "folder": f"reports={reports} is not writable; choose another folder",
        "subfolder": f"reports={named} cannot be created: {reports} is not writable",
        "store": f"results store {reports / 'results.db'}: read-only",
    }[case]
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("harness: error: ") and expected in done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert files_under(reports) == before


# Defect 8: resume=bogus leaves nothing; long values are not echoed whole
def test_resume_of_an_unknown_run_writes_nothing(reports, capsys, no_work):
    code, err = harness_main(capsys, "suite=mlp_baseline", "profile=smoke", "resume=bogus")
    assert code == 2 and "resume='bogus': no results store in" in err
    assert not reports.exists()
    ResultsStore(reports / "results.db").close()
    before = files_under(reports)
    code, err = harness_main(capsys, "suite=mlp_baseline", "profile=smoke", "resume=bogus")
    assert code == 2 and f"resume='bogus': no such run in {reports / 'results.db'}" in err
    assert files_under(reports) == before


@pytest.mark.parametrize("argument", ["profile=", "train.epochs=", "resume=", "model=", "container="])
def test_a_100_kb_value_is_not_echoed_whole(reports, capsys, no_work, argument):
    code, err = harness_main(capsys, "suite=mlp_baseline", argument + "x" * 100_000)
    assert code == 2 and len(err.splitlines()) == 1 and len(err) < 1100
    assert not reports.exists()


# Defect 7: colliding folder names
def test_cells_whose_names_map_to_one_folder_get_their_own(tmp_path):
    context = RunContext(tmp_path, None, tmp_path)
    first, second = (context.artifact_dir(Cell("s", "classify", name, "torch", "cpu", 0, {})) for name in ("Net A", "Net_A"))
    assert first != second and first.name.startswith("model_Net_A__backend_torch__device_cpu__seed_0__")
    assert sorted(path.name for path in (tmp_path / "cells").iterdir()) == sorted([first.name, second.name])


# Issue 22, item 1: a run of other seeds (backends, devices) is a new run, not a resumed one
def test_a_run_of_another_matrix_is_not_resumed(reports, tiny, console):
    from harness.suite.overrides import Override
    from harness.tasks import load_suite

    seed_0 = load_suite(tiny, "smoke")
    seed_1 = load_suite(tiny, "smoke", [Override.parse("matrix.seeds=[1]")])
    with ResultsStore(reports / "results.db") as store:
        first, _ = runner.open_run(store, seed_0, RunRequest(tiny, "smoke", reports=reports), {}, console)
    with ResultsStore(reports / "results.db") as store:  # the first left unfinished, its lease released
        second, resumed = runner.open_run(store, seed_1, RunRequest(tiny, "smoke", reports=reports), {}, console)
        assert second.run_id != first.run_id and not resumed and second.config["matrix"]["seeds"] == [1]
    assert (f"not resuming run {first.run_id}: other settings (matrix.seeds: [0] in that run, [1] now)"
            in console.file.getvalue())
    with ResultsStore(reports / "results.db") as store, pytest.raises(
            UserError, match=rf"resume={first.run_id}: that run has other settings \(matrix.seeds: \[0\] in that "
                             r"run, \[1\] now\); start a new run with resume=no"):
        runner.open_run(store, seed_1, RunRequest(tiny, "smoke", resume=first.run_id, reports=reports), {})
    with ResultsStore(reports / "results.db") as store:
        again, resumed = runner.open_run(store, seed_0, RunRequest(tiny, "smoke", reports=reports), {})
        assert again.run_id == first.run_id and resumed  # the same settings still resume it


# Defect 3 and the lease: a live run is never joined; a dead owner's run is resumed
slow = pytest.mark.slow


@slow
def test_a_second_run_started_while_the_first_is_live_does_not_join_it(reports, tiny, mnist, console, stop_after):
    request = RunRequest(tiny, "smoke", reports=reports)
    second = {}

    def start_second():
        # The first run holds its lease here, with 2 of its 4 cells committed.
        second["outcome"] = runner.run(request, console)
        with pytest.raises(UserError, match=r"resume=.*: that run is being written by pid \d+ on .*; wait for it"):
            runner.run(RunRequest(tiny, "smoke", resume=first_id(), reports=reports), console)

    def first_id():
        with ResultsStore(reports / "results.db") as store:
            return store.runs("tiny")[0].run_id

    with pytest.raises(KeyboardInterrupt):
        runner.run(request, console, stop_after(2, start_second))
    outcome = second["outcome"]
    assert outcome.run.run_id != first_id() and (outcome.ran, outcome.skipped) == (4, 0)
    assert f"run {first_id()} of these settings is being written by pid {os.getpid()}" in console.file.getvalue()
    with ResultsStore(reports / "results.db") as store:
        assert len(store.cells(first_id())) == 2 and store.run(first_id()).status == "running"
        assert store.lease(first_id()) is None  # Ctrl-C released it: resumable at once
    resumed = runner.run(request, console)
    assert resumed.run.run_id == first_id() and (resumed.ran, resumed.skipped) == (2, 2)


@slow
def test_a_run_whose_owner_died_is_resumed(reports, tiny, mnist, console, stop_after):
    request = RunRequest(tiny, "smoke", reports=reports)
    with pytest.raises(KeyboardInterrupt):
        runner.run(request, console, stop_after(1))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with ResultsStore(reports / "results.db") as store:
        [run] = store.runs("tiny")
    with sqlite3.connect(reports / "results.db") as db:  # as a kill -9 leaves it: the lease of a gone pid
        db.execute("INSERT INTO leases VALUES (?, 't', ?, ?, 'then', strftime('%s', 'now'))",
                   (run.run_id, int(dead.stdout), os.uname().nodename))
    outcome = runner.run(request, console)
    assert outcome.run.run_id == run.run_id and (outcome.ran, outcome.skipped) == (3, 1)


# Defect 5: model= resumes without completing the run
@slow
def test_a_run_of_some_models_is_partial_until_the_rest_are_run(reports, tiny, mnist, console, stop_after):
    with pytest.raises(KeyboardInterrupt):
        runner.run(RunRequest(tiny, "smoke", reports=reports), console, stop_after(1))
    some = runner.run(RunRequest(tiny, "smoke", models=["Net 3"], reports=reports), console)
    assert (some.ran, some.skipped) == (1, 0) and some.run.status == "partial"
    rest = runner.run(RunRequest(tiny, "smoke", reports=reports), console)
    assert rest.run.run_id == some.run.run_id and (rest.ran, rest.skipped) == (2, 2)
    assert rest.run.status == "complete"
    folders = sorted(path.name for path in (rest.folder / "cells").iterdir())
    assert len(folders) == 4 and sum(name.startswith("model_Net_A__") for name in folders) == 2


@slow
def test_each_cell_keeps_the_calibration_taken_around_it(reports, tiny, mnist, console, monkeypatch):
    from harness import calibration
    from harness.compare import baselines

    taken: list[int] = []

    def fake(device="cpu", samples=calibration.SAMPLES, **_):
        # The machine gets slower with every calibration: 1 ms, 2 ms, ... per pass.
        taken.append(samples)
        return calibration.describe({"version": calibration.VERSION, "samples": [len(taken) / 1000] * samples})

    monkeypatch.setattr(calibration, "calibrate", fake)
    outcome = runner.run(RunRequest(tiny, "smoke", reports=reports), console)
    # One for the run before the cells, one short one after each of the 4 cells, one for the run after them.
    assert taken == [calibration.SAMPLES] + [calibration.CELL_SAMPLES] * 4 + [calibration.SAMPLES]
    with ResultsStore(reports / "results.db") as store:
        cells = store.cells(outcome.run.run_id)
        summary = baselines.from_store(store, outcome.run.run_id)
    for number, stored in enumerate(cells, start=1):  # cell n: between calibration n and n + 1
        around = stored.result.artifacts["calibration"]
        assert around["samples"] == [number / 1000] * calibration.CELL_SAMPLES + [(number + 1) / 1000] * 5
        assert around["seconds"] == pytest.approx((number + 0.5) / 1000)
    assert [cell.calibration for cell in summary.cells] == pytest.approx([0.0015, 0.0025, 0.0035, 0.0045])


# Fault injection: kill -9 at random moments, rerun after each
@slow
def test_kills_at_random_moments_lose_and_duplicate_nothing(tmp_path, mnist):
    report = inject(kills=3, models=4, folder=tmp_path, window=3.0)
    summary = report.as_dict()
    assert summary["kills"] == 3 and summary["integrity_check"] == "ok"
    assert (summary["cells_lost"], summary["cells_duplicated"]) == (0, 0)
    assert report.csv_mismatches == [] and report.leftovers == [] and report.leases_left == 0
    assert summary["runs"] >= 1 and summary["cells_per_run"] == 4


@slow
def test_results_files_are_rewritten_at_most_every_interval_and_when_the_loop_ends(reports, tiny, mnist, console,
                                                                                  stop_after, monkeypatch):
    # Rewriting every cell's files after each cell is quadratic; a crash or Ctrl-C must still leave
    # the files holding every cell the store has.
    writes = []
    original = runner.write_run_files
    monkeypatch.setattr(runner, "write_run_files", lambda folder, run, cells, columns: (
        writes.append(len(cells)), original(folder, run, cells, columns)))
    monkeypatch.setattr(runner, "RESULTS_FILES_INTERVAL", 3600.0)
    with pytest.raises(KeyboardInterrupt):
        runner.run(RunRequest(tiny, "smoke", reports=reports), console, stop_after(3))
    assert writes == [3]  # none while the cells ran; once, with all three, as the loop was left
    [folder] = [path.parent for path in reports.rglob("results.csv")]
    assert len((folder / "results.csv").read_text().splitlines()) == 1 + 3

    monkeypatch.setattr(runner, "RESULTS_FILES_INTERVAL", 0.0)
    writes.clear()
    runner.run(RunRequest(tiny, "smoke", reports=reports), console)
    assert writes == [4, 4]  # the resumed cell (an interval of 0: after each), then the final render


def test_cuda_cells_run_elsewhere_are_not_checked_against_this_machines_gpu():
    # A Ray driver on a laptop sends CUDA cells to the cluster's GPU nodes: its own GPU does not matter.
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from harness.suite.overrides import Override

    suite, task, cells = runner.plan(RunRequest("mlp_baseline", "smoke",
                                                overrides=[Override("matrix.devices", ["cuda"], "test")]))
    with pytest.raises(UserError, match="cuda"):
        runner.check_frameworks(task, cells)
    assert runner.check_frameworks(task, cells, devices_here=False) == {}


# Issue 22, item 11: harness report redraws the cells' figures of a deleted run folder, or says it cannot
def test_render_redraws_the_figures_of_a_deleted_cell_folder_or_says_which_it_cannot(tmp_path, tiny, console,
                                                                                     monkeypatch):
    from harness.cells import CellResult, StoredCell
    from harness.tasks import load_suite, task_for

    suite = load_suite(tiny, "smoke")
    task = task_for("classify")
    monkeypatch.setattr(task, "tables", lambda suite, cells: [])  # only the cells' own figures are under test
    monkeypatch.setattr(task, "figures", lambda suite, cells, out_dir: [])
    history = [{"epoch": 1, "train_accuracy": 0.5, "val_accuracy": 0.4, "train_loss": 1.0, "val_loss": 1.2}]
    figures = ["cells/net_a/learning_curves.png", "cells/net_a/confusion_matrix.png"]
    stored = StoredCell(Cell("tiny", "classify", "Net A", "torch", "cpu", 0, {}),
                        CellResult("ok", {"device": "cpu"}, {"history": history, "confusion": [[1] * 10] * 10,
                                                              "figures": figures}))
    task.render(suite, [stored], tmp_path, console)
    assert all((tmp_path / name).stat().st_size > 0 for name in figures)
    assert "not redrawn" not in console.file.getvalue()
    for name in figures:
        (tmp_path / name).unlink()
    monkeypatch.setattr(task, "cell_figures", lambda suite, stored, folder: [])  # a task that cannot redraw them
    task.render(suite, [stored], tmp_path, console)
    assert ("2 figure(s) of the cells not redrawn: the classify task draws them while a cell runs, from what the "
            "store does not keep; run the cells again to have them (first: cells/net_a/learning_curves.png)"
            in console.file.getvalue())


# Issue 22, item 9: the index is written after the status is committed
def test_the_index_shows_the_status_the_run_ended_with(reports, tiny, mnist, console):
    outcome = runner.run(RunRequest(tiny, "smoke", reports=reports, models=["Net 2"]), console)
    assert outcome.run.status == "partial"
    index = (reports / "index.html").read_text()
    assert ">partial</td>" in index and ">running</td>" not in index


# Issue 22, storage faults: one line, exit 3, committed cells kept, no temporary file left
def leftover_temporaries(folder: Path) -> list[str]:
    return [str(path) for path in folder.rglob("*") if ".tmp" in path.name or path.name.startswith(".latest.")]


def test_a_disk_that_fills_mid_run_is_one_line_exit_3_and_the_rerun_finishes(reports, tiny, mnist, capsys,
                                                                            monkeypatch):
    # The stand-in for a full disk that needs no mount: the first results file fails half-written,
    # after the first cell was committed, as a flush on a full filesystem does (no file name).
    monkeypatch.setattr(runner, "RESULTS_FILES_INTERVAL", 0.0)
    write_text = Path.write_text

    def full(path, text, *args, **kwargs):
        if path.name.startswith(".results.csv."):
            write_text(path, text[:10], *args, **kwargs)
            raise OSError(28, "No space left on device")
        return write_text(path, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    code, err = harness_main(capsys, f"suite={tiny}", "profile=smoke")
    with ResultsStore(reports / "results.db") as store:
        [run] = store.runs("tiny")
        kept = len(store.cells(run.run_id))
        assert run.status == "running" and store.lease(run.run_id) is None
    assert code == 3 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"harness: storage fault: {reports / 'tiny' / run.run_id / 'results.csv'}: "
                          "no space left on device; finished cells are kept")
    assert kept == 1 and leftover_temporaries(reports) == []

    monkeypatch.setattr(Path, "write_text", write_text)  # space freed: the same command finishes the run
    assert harness_main(capsys, f"suite={tiny}", "profile=smoke")[0] == 0
    with ResultsStore(reports / "results.db") as store:
        assert [(r.run_id, r.status, len(store.cells(r.run_id))) for r in store.runs("tiny")] == [
            (run.run_id, "complete", 4)]


def test_a_run_on_a_200_kb_filesystem_is_one_line_exit_3(small_filesystem, capsys, monkeypatch):
    reports = small_filesystem("200k")
    code, err = harness_main(capsys, "suite=pca", "profile=smoke", f"reports={reports}")
    assert code == 3 and err.startswith(f"harness: storage fault: {reports}: only ")  # found before any work
    assert err.endswith("KiB; nothing was written; free space or choose another folder with reports=DIR "
                        "(or $HARNESS_REPORTS)\n") and not (reports / "results.db").exists()

    monkeypatch.setattr("harness.store.preflight.MIN_FREE_BYTES", 0)  # let it start: the disk fills mid-run
    code, err = harness_main(capsys, "suite=pca", "profile=smoke", f"reports={reports}")
    assert code == 3 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"harness: storage fault: {reports}/") and ": no space left on device; " in err
    assert leftover_temporaries(reports) == []
    with contextlib.closing(sqlite3.connect(reports / "results.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0


def test_a_read_only_empty_dataset_cache_is_one_line_before_any_work(tmp_path, capsys, no_work, monkeypatch):
    cache = tmp_path / "cache"
    cache.write_text("a file where the dataset cache should be")
    monkeypatch.setenv("HARNESS_DATA", str(cache))
    code, err = harness_main(capsys, "suite=pca", "profile=smoke", f"reports={tmp_path / 'reports'}")
    assert code == 2 and err == (f"harness: error: mnist: not in the dataset cache {cache / 'mnist'}, and it cannot "
                                 f"be fetched there: {cache} is a file; set HARNESS_DATA to a folder this user can "
                                 "write\n")
    assert not (tmp_path / "reports").exists()


# Issue 22: SIGTERM is Ctrl-C with its own exit code
def test_sigterm_keeps_finished_cells_writes_the_files_and_releases_the_lease(tmp_path, tiny, mnist):
    from benchmarks.fault_injection import command, environment

    reports = tmp_path / "reports"
    process = subprocess.Popen(command(Path(tiny), reports), cwd=ROOT, env=environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if (reports / "results.db").exists():
            with contextlib.closing(sqlite3.connect(reports / "results.db")) as db:
                tables = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'cells'").fetchone()
                if tables and db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] >= 1:
                    break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    err = process.communicate(timeout=120)[1]
    assert process.returncode == 143, err
    assert err == "harness: terminated (SIGTERM); finished cells are stored (run the same command again to resume)\n"
    with ResultsStore(reports / "results.db") as store:
        [run] = store.runs("tiny")
        kept = len(store.cells(run.run_id))
        assert run.status == "running" and store.lease(run.run_id) is None and 1 <= kept < 4
    rows = (reports / "tiny" / run.run_id / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + kept  # the files hold every committed cell
