"""Studies: the report's study file, bad study files, and a tiny study killed midway and resumed."""

from __future__ import annotations

import errno
from dataclasses import replace

import pytest

from harness.study import runner as study_runner
from harness.commands import list as list_command
from harness.errors import UserError
from harness.runner import RunRequest
from harness.store import ResultsStore, RunInfo, now
from harness.suite.load import suite_names
from harness.suite.overrides import Override
from harness.suite.study import load_study
from harness.tasks import load_suite

REPORT_ORDER = ["pca", "perceptron", "mlp_baseline", "mlp_depth", "cnn_baseline", "mlp_vs_cnn", "cnn_depth",
                "visualize", "mtl"]


def test_the_report_study_plans_every_suite_in_the_reports_order_without_training():
    study, planned, _ = study_runner.plan_study(RunRequest("report", "smoke"))
    assert [suite.name for _, suite in planned] == REPORT_ORDER
    assert all(request.profile == suite.profile == "smoke" for request, suite in planned)
    tables = {number for member in study.members for number in member.tables}
    assert {"2.1", "3.1", "3.2", "4.1", "4.3", "4.4", "6.1", "6.2"} <= tables
    _, claims_profile, _ = study_runner.plan_study(RunRequest("report", "claims"))
    assert [(r.profile, suite.name) for r, suite in claims_profile] == [
        ("claims", "perceptron"), ("claims", "mlp_vs_cnn"), ("claims", "mtl")]
    assert load_suite("mtl", "claims").matrix.seeds == [0, 1, 2, 3, 4]
    # The seeded document's members: what a CPU can afford, at the report's settings, 3 seeds each.
    _, seeded, _ = study_runner.plan_study(RunRequest("report", "seeded"))
    assert [suite.name for _, suite in seeded] == ["pca", "perceptron", "mlp_baseline", "cnn_baseline", "mlp_vs_cnn",
                                                   "mtl"]
    assert all(suite.matrix.seeds == [0, 1, 2] and suite.profile == "seeded" for _, suite in seeded)


def test_a_study_is_not_a_suite():
    assert "report" not in suite_names()
    with pytest.raises(UserError, match="^report is a study, not a suite: run it with harness run suite=report$"):
        load_suite("report")


def test_harness_list_shows_studies_apart(console):
    assert list_command.main([], console) == 0
    text = console.file.getvalue()
    studies = text[text.index("Studies"):]
    assert "report" in studies and "pca, perceptron, mlp_baseline" in studies and "mtl.toml" not in text
    assert "│ report " not in text[:text.index("Studies")]


@pytest.mark.parametrize("text, message", [
    ('title = "t"\n[[members]]\nsuite = "pca"\nsection = "1"\ncolour = 2\n',
     "study bad: unknown key 'members.0.colour'; allowed here: suite, section, profiles, tables"),
    ('title = "t"\nmembers = []\n', "study bad: members: List should have at least 1 item after validation, not 0"),
    ('title = "t"\n[[members]]\nsuite = "pca"\nsection = "1"\n[[members]]\nsuite = "pca"\nsection = "2"\n',
     "study bad: members: member suites must be unique; repeated: pca"),
])
def test_bad_study_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError) as caught:
        load_study(path)
    assert str(caught.value) == message


def test_unknown_profile_and_model_option_are_refused(tmp_path):
    with pytest.raises(UserError, match="^study report: unknown profile 'fast'; profiles: smoke, full, seeded, claims$"):
        study_runner.plan_study(RunRequest("report", "fast"))
    with pytest.raises(UserError, match="^model= picks models of one suite"):
        study_runner.plan_study(RunRequest("report", "smoke", models=["MLP Bonus Model"]))


TINY = """
title = "Two suites"
[[members]]
suite = "pca"
section = "Task 1"
tables = { "1 (text)" = "table" }

[[members]]
suite = "mlp_vs_cnn"
section = "Task 4"
tables = { "4.3" = "table" }
"""


@pytest.mark.slow
def test_a_study_killed_midway_resumes_without_redoing_finished_cells(tmp_path, reports, mnist, console, stop_after):
    study = tmp_path / "tiny.toml"
    study.write_text(TINY)
    # Two seeds of one cheap suite, so the claim of mlp_vs_cnn is tested, not just stored.
    overrides = [Override("data.train_samples", 600), Override("data.test_samples", 200),
                 Override("matrix.seeds", [0, 1])]
    request = RunRequest(str(study), "smoke", overrides=overrides, reports=reports)
    with pytest.raises(KeyboardInterrupt):
        # Killed before the fourth cell of the whole study (the second member's second cell).
        study_runner.run_study(request, console, stop_after(3))
    with ResultsStore(reports / "results.db") as store:
        [first] = store.runs("tiny")
        pca_before = {s.cell.key: s.result.record for s in store.cells(f"{first.run_id}.pca")}
        mlp_before = {s.cell.key: s.result.record for s in store.cells(f"{first.run_id}.mlp_vs_cnn")}
        assert store.run(f"{first.run_id}.pca").status == "complete" and first.status == "running"
        interrupted_walls = store.run(first.run_id).environment["wall_seconds"]
    assert len(pca_before) == 2 and len(mlp_before) == 1
    assert set(interrupted_walls) == {"pca", "mlp_vs_cnn"}  # the interrupted member's time is counted too
    # A member's first run starts (its empty run was made by the study); only one with cells resumes.
    assert f"starting run {first.run_id}.pca of pca" in console.file.getvalue()
    assert "resuming run" not in console.file.getvalue()

    outcome = study_runner.run_study(request, console)
    assert f"resuming run {first.run_id}.mlp_vs_cnn of mlp_vs_cnn (smoke): 3 cell(s) to run, 1 already done" in (
        console.file.getvalue())
    assert outcome.run.run_id == first.run_id and outcome.run.status == "complete"
    assert [(m.suite, m.ran, m.skipped) for m in outcome.members] == [("pca", 0, 2), ("mlp_vs_cnn", 3, 1)]
    with ResultsStore(reports / "results.db") as store:
        pca_after = {s.cell.key: s.result.record for s in store.cells(f"{first.run_id}.pca")}
        mlp_after = {s.cell.key: s.result.record for s in store.cells(f"{first.run_id}.mlp_vs_cnn")}
        walls = store.run(first.run_id).environment["wall_seconds"]
    assert pca_after == pca_before and len(mlp_after) == 4
    assert all(mlp_after[key] == record for key, record in mlp_before.items())  # finished cells untouched
    assert set(walls) == {"pca", "mlp_vs_cnn"} and all(seconds > 0 for seconds in walls.values())
    assert walls["mlp_vs_cnn"] > interrupted_walls["mlp_vs_cnn"] and walls["pca"] == interrupted_walls["pca"]

    folder = reports / "tiny" / first.run_id
    assert outcome.document == folder / "index.html" and (reports / "tiny" / "latest").resolve() == folder.resolve()
    markdown = (folder / "report.md").read_text()
    assert "#### Table 4.3: " in markdown and "#### Table 1 (text): " in markdown
    # Smoke-sized data: no number judged, no claim tested, and the top of the document says why.
    assert markdown.split("## Summary")[0].count("Nothing here is judged") == 1
    assert ("mlp_vs_cnn: 600 of 60,000 training images, 200 of 10,000 test images, 1 of 2 epochs"
            in markdown.split("## Summary")[0])
    assert ("| MLP Bonus Model · torch · cpu | Params | 795,010 | 795,010 | – | – | 2 | 0 | exact | "
            "not judged: settings differ |" in markdown)
    assert "CNN outperforms MLP in all configurations" in markdown and "Wall time" in markdown
    printed = console.file.getvalue()
    assert "The report's claims" in printed and "reproduction document:" in printed
    assert "Claims: 1 not tested: settings differ." in printed and "reproduced" not in printed.split("Claims:")[0]

    # harness report: a study run re-renders its document; a member run prints its claims too.
    from harness.commands import report as report_command

    console.file.seek(0)
    console.file.truncate()
    assert report_command.render("tiny", None, reports, console) == folder
    assert report_command.render("mlp_vs_cnn", None, reports, console) == reports / "mlp_vs_cnn" / f"{first.run_id}.mlp_vs_cnn"
    assert console.file.getvalue().count("The report's claims") == 2

    again = study_runner.run_study(request, console)
    assert again.run.run_id != first.run_id  # a complete study run is not resumed: a new one starts


# Issue 22, item 4: every option of a study, its executor's included, is checked before anything is written
@pytest.mark.parametrize("options, message", [
    (["executor=ray", "threads_per_cell=0"], "threads_per_cell='0': expected a positive integer"),
    (["executor=dask"], "executor='dask': allowed: local, ray"),
    (["train.learning_rate=inf"], "train.learning_rate: Input should be a finite number"),
])
def test_a_study_with_a_bad_option_writes_nothing(reports, capsys, options, message):
    from harness import cli

    assert cli.main(["run", "suite=report", "profile=smoke", *options]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.splitlines()) == 1
    assert not reports.exists()


# Issue 22, item 8: a study naming a table its member does not write is refused as it is planned
def test_a_study_naming_a_table_that_does_not_exist_is_refused(tmp_path, reports):
    study = tmp_path / "tiny.toml"
    study.write_text(TINY.replace('"4.3" = "table"', '"4.3" = "tabel"'))
    with pytest.raises(UserError, match=r"^study tiny: member mlp_vs_cnn: no table 'tabel'; its task \(classify\) "
                                        r"writes: table, backends$"):
        study_runner.plan_study(RunRequest(str(study), "smoke", reports=reports))
    assert not reports.exists()


# Issue 22, item 1: a study's identity is made of its members' whole settings, matrix included
def test_a_study_of_other_seeds_is_another_study_run(tmp_path, reports):
    study_file = tmp_path / "tiny.toml"
    study_file.write_text(TINY)
    seed_0 = RunRequest(str(study_file), "smoke", reports=reports)
    seed_1 = RunRequest(str(study_file), "smoke", overrides=[Override("matrix.seeds", [1])], reports=reports)
    study, planned_0, _ = study_runner.plan_study(seed_0)
    _, planned_1, _ = study_runner.plan_study(seed_1)
    settings_0 = study_runner.study_settings(study, "smoke", planned_0)
    assert settings_0 != study_runner.study_settings(study, "smoke", planned_1)
    with ResultsStore(reports / "results.db") as store:
        first = study_runner.open_study_run(store, study, seed_0, settings_0, planned_0)
        member = dict((suite.name, suite) for _, suite in planned_0)["mlp_vs_cnn"]
        store.create_run(RunInfo(f"{first.run_id}.mlp_vs_cnn", "mlp_vs_cnn", "smoke", member.config_hash, now(), None,
                                 "running", member.resolved(), {}))
    with ResultsStore(reports / "results.db") as store:
        with pytest.raises(UserError, match=rf"^resume={first.run_id}: that run has other settings \(mlp_vs_cnn: "
                                            r"matrix.seeds: \[0\] in that run, \[1\] now\); start a new run"):
            study_runner.open_study_run(store, study, replace(seed_1, resume=first.run_id),
                                        study_runner.study_settings(study, "smoke", planned_1), planned_1)
        other = study_runner.open_study_run(store, study, seed_1, study_runner.study_settings(study, "smoke", planned_1),
                                            planned_1)
        assert other.run_id != first.run_id


SOLO = TINY[:TINY.index('[[members]]\nsuite = "mlp_vs_cnn"')]  # its pca member alone: no training


def test_a_study_whose_document_fails_stays_unfinished_and_the_rerun_renders_without_retraining(
        tmp_path, reports, console, monkeypatch):
    study = tmp_path / "solo.toml"
    study.write_text(SOLO)
    request = RunRequest(str(study), "smoke", reports=reports)
    write_document = study_runner.document.write_document

    def full_disk(reproduction, folder):
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "index.html"))

    monkeypatch.setattr(study_runner.document, "write_document", full_disk)
    with pytest.raises(OSError):
        study_runner.run_study(request, console)
    with ResultsStore(reports / "results.db") as store:
        [first] = store.runs("solo")
        assert first.status == "running"  # not complete: its document was never written
        member = store.run(f"{first.run_id}.pca")
        assert member.status == "complete"

    monkeypatch.setattr(study_runner.document, "write_document", write_document)
    outcome = study_runner.run_study(request, console)
    assert outcome.run.run_id == first.run_id and outcome.run.status == "complete"
    assert [(m.suite, m.ran) for m in outcome.members] == [("pca", 0)]  # nothing retrained
    assert outcome.document.is_file()
    assert ">complete</td>" in (reports / "index.html").read_text()
