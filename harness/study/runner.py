"""A run of a study: every member suite in one run id, resumable as one unit, then the reproduction document.

A study run is a row of the store's ``runs`` table like any run (its suite is the study's name, its
config the study and the member run ids); each member's cells go into an ordinary run of the member
suite whose id is ``<study run id>.<suite>``, so every tool that reads runs reads those too. A rerun
with the same settings resumes the newest unfinished study run: complete members are skipped, and the
runner skips the finished cells of the others. Every option of ``harness run`` reaches each member
unchanged (overrides, backend, device, seeds, the executor).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console

from harness import runner
from harness.study import claims
from harness.errors import UserError
from harness.executors import Executor
from harness.paths import point_latest
from harness.render import html as html_report
from harness.study import document
from harness.store import ResultsStore, RunInfo, now
from harness.suite.load import suites_dir
from harness.suite.schema import Suite
from harness.suite.study import Study, config_hash, is_study_file, load_study
from harness.tasks import task_for, validate_suite


@dataclass
class MemberOutcome:
    suite: str
    run_id: str
    ran: int
    skipped: int
    failed: list[str]


@dataclass
class StudyOutcome:
    run: RunInfo
    document: Path
    members: list[MemberOutcome]

    @property
    def failed(self) -> list[str]:
        return [f"{m.suite}: {failure}" for m in self.members for failure in m.failed]


def study_path(name_or_path: str) -> Path | None:
    """The study file ``name_or_path`` names, or None when it names a suite (or nothing)."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        try:
            path = suites_dir() / f"{name_or_path}.toml"
        except UserError:
            return None
    return path if path.is_file() and is_study_file(path) else None


def member_run_id(study_run_id: str, suite: str) -> str:
    return f"{study_run_id}.{suite}"


def plan_study(request: runner.RunRequest) -> tuple[Study, list[tuple[runner.RunRequest, Suite]]]:
    """The study and, per member run in this profile, its request and resolved suite; every member suite
    is loaded with the overrides now, so a bad one fails before anything is written."""
    path = study_path(request.suite)
    if path is None:
        raise UserError(f"{request.suite!r} is not a study file")
    study = load_study(path)
    if request.models is not None:
        raise UserError("model= picks models of one suite; a study runs its members whole (run a member suite instead)")
    planned = []
    for member, profile in study.members_in(request.profile):
        member_request = replace(request, suite=study.suite_path(member), profile=profile, resume=None)
        suite, _, cells = runner.plan(member_request)
        if not cells:
            raise UserError(f"study {study.name}: member {suite.name}: nothing to run")
        planned.append((member_request, suite))
    return study, planned


def open_study_run(store: ResultsStore, study: Study, request: runner.RunRequest, settings: str,
                   members: list[str]) -> RunInfo:
    """The study run to continue (the one asked for, or an unfinished one of the same settings that no live
    process is writing) or a new one; leased to this process like any run (:meth:`ResultsStore.open_run`)."""

    def new_run() -> RunInfo:
        run_id = runner.new_run_id(settings)
        config = {"study": study.resolved(), "members": {name: member_run_id(run_id, name) for name in members}}
        return RunInfo(run_id, study.name, request.profile, settings, now(), None, "running", config,
                       {"wall_seconds": {}})

    run, _, _ = store.open_run(study.name, settings, request.resume, new_run)
    if run.suite != study.name or run.config_hash != settings:
        raise UserError(f"resume={request.resume}: that run has other settings; start a new run with resume=no")
    return run


def run_study(request: runner.RunRequest, console: Console, executor: Executor | None = None) -> StudyOutcome:
    """Run every member of a study into one study run, then write its reproduction document."""
    study, planned = plan_study(request)
    settings = config_hash(study, request.profile, {suite.name: suite.config_hash for _, suite in planned})
    database = request.reports / "results.db"
    # One store for the whole study: it holds the study run's lease while the members run.
    with ResultsStore(database) as store:
        study_run = open_study_run(store, study, request, settings, [suite.name for _, suite in planned])
        console.print(f"study {study.name} ({request.profile}), run {study_run.run_id}: "
                      f"{', '.join(suite.name for _, suite in planned)}", markup=False)
        outcomes = []
        for member_request, suite in planned:
            name = suite.name
            run_id = member_run_id(study_run.run_id, name)
            existing = {r.run_id: r for r in store.runs(name)}.get(run_id)
            if existing is not None and existing.status == "complete":
                console.print(f"{name}: complete in run {run_id}, skipped", markup=False)
                outcomes.append(MemberOutcome(name, run_id, 0, len(store.cells(run_id)), []))
                continue
            if existing is None:
                # The member run is created here with the study's id; the runner then resumes into it.
                store.create_run(RunInfo(run_id, name, suite.profile, suite.config_hash, now(), None, "running",
                                         suite.resolved(), {}))
            started = time.monotonic()
            try:
                outcome = runner.run(replace(member_request, resume=run_id), console, executor)
            finally:
                # An interrupted attempt (Ctrl-C, SIGTERM, a crash) counts too; only a kill -9 loses its time.
                add_wall_time(store, study_run.run_id, name, time.monotonic() - started)
            outcomes.append(MemberOutcome(name, run_id, outcome.ran, outcome.skipped, outcome.failed))
        failed = any(store.run(m.run_id).status != "complete" for m in outcomes)
        status = "failed" if failed else "complete"
        # The document first, the status last: a study whose render fails or is killed stays
        # unfinished, so the same command picks it up again and renders it without retraining.
        page = render_study(store, request.reports, replace(store.run(study_run.run_id), status=status,
                                                             finished=now()), console)
        store.update_run(study_run.run_id, status=status)
        html_report.write_index(store, request.reports)
        study_run = store.run(study_run.run_id)
    return StudyOutcome(study_run, page, outcomes)


def add_wall_time(store: ResultsStore, study_run_id: str, suite: str, seconds: float) -> None:
    """Add a member's wall time to the study run's (a resumed member adds each attempt's)."""
    run = store.run(study_run_id)
    environment = dict(run.environment)
    walls = dict(environment.get("wall_seconds", {}))
    walls[suite] = walls.get(suite, 0.0) + seconds
    environment["wall_seconds"] = walls
    store.update_run(study_run_id, status=run.status, environment=environment)


def is_study_run(run: RunInfo) -> bool:
    return "study" in run.config and "members" in run.config


def render_study(store: ResultsStore, reports: Path, study_run: RunInfo, console: Console | None) -> Path:
    """Write a stored study run's reproduction document from the store (never retrains); returns its page."""
    # Keys a later harness dropped are left out, so an older study run still renders.
    stored = study_run.config["study"]
    study = Study.model_validate({key: value for key, value in stored.items() if key in Study.model_fields})
    members = []
    walls = study_run.environment.get("wall_seconds", {})
    for member in study.members:
        name = Path(member.suite).stem
        run_id = study_run.config["members"].get(name)
        found = {r.run_id: r for r in store.runs(name)}.get(run_id) if run_id else None
        if found is None:
            members.append(document.MemberReport(name, member.section, name, "", None, None,
                                                 report_tables=member.tables))
            continue
        suite = validate_suite(found.config, f"run {found.run_id}")
        cells = store.cells(found.run_id)
        members.append(document.MemberReport(
            name, member.section, suite.title, suite.mirrors, found, found.folder(reports),
            task_for(suite.task).tables(suite, cells), member.tables, suite.tolerances,
            claims.evaluate(name, suite.claims, cells), walls.get(name)))
    reproduction = document.Document(study, study_run, members)
    folder = study_run.folder(reports)
    page = document.write_document(reproduction, folder)
    point_latest(folder.parent, study_run.run_id)
    if console is not None:
        print_claims(reproduction.claims(), console)
        for line in reproduction.summary():
            console.print(line, markup=False)
        console.print(f"reproduction document: {page}", markup=False)
    return page


def print_claims(results: list[claims.ClaimResult], console: Console) -> None:
    """The claims and their verdicts as a terminal table."""
    if results:
        table = replace(document.claims_table(results), console_columns=[
            "Claim", "Verdict", "Comparison", "n", "Effect", "95% CI", "p (one-sided)", "Part verdict"])
        console.print(table.rich())


def run_command(request: runner.RunRequest, console: Console, executor: Executor | None = None) -> int:
    """``harness run suite=STUDY``: run the study, say where its document is, fail on failed cells."""
    from harness.errors import CellsFailed

    if request.container:
        raise UserError("container= runs one suite at a time; run the study inside the image instead")
    outcome = run_study(request, console, executor)
    console.print(f"results: {outcome.document}", markup=False)
    if outcome.failed:
        raise CellsFailed(f"{len(outcome.failed)} cell(s) failed: {'; '.join(outcome.failed)}")
    return 0


def print_run_claims(store: ResultsStore, run: RunInfo, console: Console) -> list[claims.ClaimResult]:
    """Test a suite run's claims on its stored records and print them; returns the results."""
    suite = validate_suite(run.config, f"run {run.run_id}")
    results = claims.evaluate(suite.name, suite.claims, store.cells(run.run_id))
    print_claims(results, console)
    return results
