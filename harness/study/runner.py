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
from harness.cells import units
from harness.study import claims
from harness.errors import UserError
from harness.estimate import format_seconds
from harness.executors import Executor, executor_named
from harness.paths import point_latest
from harness.render import html as html_report
from harness.study import document, evidence
from harness.store import ResultsStore, RunInfo, now
from harness.suite.load import suites_dir
from harness.suite.schema import Suite
from harness.suite.schema import settings_difference as suite_difference
from harness.suite.study import Member, Study, config_hash, is_study_file, load_study
from harness.tasks import validate_suite
from harness.tasks.base import Task


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


def plan_study(request: runner.RunRequest, executor: Executor | None = None
               ) -> tuple[Study, list[tuple[runner.RunRequest, Suite]], Executor]:
    """The study, per member run in this profile its request and resolved suite, and the executor.

    Every check a member's run makes before writing is made here for every member (the executor's
    options, the suite with the overrides, the tables the study names, the frameworks and devices),
    and the executor is started with every member's cells: a bad option fails before anything is written.
    """
    executor = executor or executor_named(request.executor, **request.executor_options)
    study, members = study_members(request)
    for _, _, task, cells in members:
        runner.check_frameworks(task, cells, devices_here=executor.name == "local")
    executor.start([cell for *_, cells in members for cell in cells])
    return study, [(member_request, suite) for member_request, suite, _, _ in members], executor


def study_members(request: runner.RunRequest) -> tuple[Study, list[tuple[runner.RunRequest, Suite, Task, list]]]:
    """The study and, per member run in this profile, its request, resolved suite, task and cells: the
    checks of the input alone (no framework, device or executor), all a dry run needs."""
    path = study_path(request.suite)
    if path is None:
        raise UserError(f"{request.suite!r} is not a study file")
    study = load_study(path)
    if request.models is not None:
        raise UserError("model= picks models of one suite; a study runs its members whole (run a member suite instead)")
    members = []
    for member, profile in study.members_in(request.profile):
        member_request = replace(request, suite=study.suite_path(member), profile=profile, resume=None)
        suite, task, cells = runner.check_plan(member_request)
        check_tables(study, member, suite.name, task)
        members.append((member_request, suite, task, cells))
    return study, members


def check_tables(study: Study, member: Member, suite: str, task: Task) -> None:
    """Each table the study maps to the report must be one the member's task writes."""
    unknown = [stem for stem in member.tables.values() if stem not in task.table_stems]
    if unknown:
        raise UserError(f"study {study.name}: member {suite}: no table {', '.join(map(repr, unknown))}; "
                        f"its task ({task.name}) writes: {', '.join(task.table_stems) or 'none'}")


def study_settings(study: Study, profile: str, planned: list[tuple[runner.RunRequest, Suite]]) -> str:
    """A study run's identity: the study, the profile and each member's whole settings, matrix included."""
    return config_hash(study, profile, {suite.name: suite.identity for _, suite in planned})


def study_difference(store: ResultsStore, study_run: RunInfo, study: Study, profile: str,
                     planned: list[tuple[runner.RunRequest, Suite]]) -> str:
    """What tells a stored study run from the command's settings: the study, its members, or the first
    setting of the first member that differs."""
    if study_run.suite != study.name or not is_study_run(study_run):
        return f"study {study_run.suite}, now {study.name}"
    stored = study_run.config["members"]
    names = [suite.name for _, suite in planned]
    if sorted(stored) != sorted(names):
        return f"members {', '.join(sorted(stored))} in that run, {', '.join(names)} now"
    for _, suite in planned:
        found = {r.run_id: r for r in store.runs(suite.name)}.get(stored[suite.name])
        difference = suite_difference(found.config, suite.resolved()) if found is not None else None
        if difference is not None:
            return f"{suite.name}: {difference}"
    if study_run.profile != profile:
        return f"profile {study_run.profile} in that run, {profile} now"
    return "the members' settings differ (overrides, matrix)"  # of members that run had not started


def open_study_run(store: ResultsStore, study: Study, request: runner.RunRequest, settings: str,
                   planned: list[tuple[runner.RunRequest, Suite]]) -> RunInfo:
    """The study run to continue (the one asked for, or an unfinished one of the same settings that no live
    process is writing) or a new one; leased to this process like any run (:meth:`ResultsStore.open_run`)."""
    if request.resume not in (None, "no"):
        asked = store.run(request.resume)
        if asked.config_hash != settings or asked.suite != study.name:
            raise UserError(f"resume={request.resume}: that run has other settings "
                            f"({study_difference(store, asked, study, request.profile, planned)}); start a new run with resume=no")

    def new_run() -> RunInfo:
        run_id = runner.new_run_id(settings)
        config = {"study": study.resolved(),
                  "members": {suite.name: member_run_id(run_id, suite.name) for _, suite in planned}}
        return RunInfo(run_id, study.name, request.profile, settings, now(), None, "running", config,
                       {"wall_seconds": {}})

    run, _, _ = store.open_run(study.name, settings, request.resume, new_run)
    return run


def run_study(request: runner.RunRequest, console: Console, executor: Executor | None = None) -> StudyOutcome:
    """Run every member of a study into one study run, then write its reproduction document."""
    study, planned, executor = plan_study(request, executor)
    settings = study_settings(study, request.profile, planned)
    database = request.reports / "results.db"
    # One store for the whole study: it holds the study run's lease while the members run.
    with ResultsStore(database) as store:
        study_run = open_study_run(store, study, request, settings, planned)
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


def dry_run_study(request: runner.RunRequest, console: Console) -> float:
    """``dry_run=true`` for a study: each member's planned cells and estimate, then the study's total
    (seconds of the cells that have an estimate, returned). Writes nothing."""
    study, planned = study_members(request)
    total, unknown = 0.0, 0
    for member_request, suite, _, _ in planned:
        console.print(f"\n{study.name}: member {suite.name}", markup=False)
        estimated = runner.dry_run(member_request, console)
        total, unknown = total + estimated.seconds, unknown + estimated.unknown
    console.print(f"\nstudy {study.name} ({request.profile}): {len(planned)} member(s), estimated "
                  f"{format_seconds(total)}" + (f" (+ {unknown} cell(s) that cannot be estimated)" if unknown else ""),
                  markup=False)
    return total


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
        members.append(evidence.member_report(study, member, suite, found, found.folder(reports),
                                              store.cells(found.run_id), walls.get(name)))
    reproduction = document.Document(study, study_run, members)
    folder = study_run.folder(reports)
    page = document.write_document(reproduction, folder)
    point_latest(folder.parent, study_run.run_id)
    if console is not None:
        print_claims(reproduction.claims(), console)
        for line in [reproduction.banner(), *reproduction.summary()] if reproduction.banner() else reproduction.summary():
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
    results = claims.evaluate(suite.name, suite.claims, units(store.cells(run.run_id)))
    print_claims(results, console)
    return results
