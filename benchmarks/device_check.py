"""The GPU check of issue 25 in one command: CUDA tests, epoch ratios, deterministic runs, the whole report.

    python benchmarks/device_check.py --out DIR [--device cuda] [--budget SECONDS] [--datasets DIR]
                                      [--work DIR] [--tiny]

Runs, in this order, each step as a child process with a time limit, timed, a failed step recorded
and the next one run:

1. ``cuda_tests``: ``pytest -m cuda`` (none may fail, and on a GPU at least one must run);
2. ``bench_epoch``: benchmarks/bench_epoch.py on the device, PyTorch, MLP and CNN baselines, 5
   repeats: the harness's epoch against the plain eager loop (goal on a GPU: at most 0.5x);
3. ``profile``: benchmarks/profile_epoch.py, the device's top kernels for both sides of that ratio;
4. ``deterministic``: the MLP and CNN baselines twice with ``deterministic=true`` and once without
   (full data, 3 epochs): every non-timing column of the two deterministic results.csv must agree,
   and the default run's training seconds say what determinism costs;
5. ``study``: ``harness run suite=report profile=full backend=torch device=DEVICE`` with whatever is
   left of ``--budget``, each member's wall time read from the results store (goal: under 10 minutes
   in all). When the budget runs out the study is interrupted (as by Ctrl-C) and the members that
   finished are reported.

DIR receives device_check.json, device_check.md (both rewritten after every step, so a run cut
short still leaves its figures) and device_check.log (every child's output). Bulky outputs (reports,
the datasets) go to ``--work`` (default: a temporary folder). ``--datasets`` names a folder of
gzipped IDX files (``mnist/train-images-idx3-ubyte.gz``, ...) to unpack and verify first, for a
machine without network. Exit code 1 when a step failed; a goal missed is a finding, not a failure.

``--tiny`` is the CPU dry run the test suite makes (tests/test_device_check.py): every step with
tiny settings (smoke profiles, 1 repeat, a few hundred images, one 1-epoch suite for the study).
docs/gpu.md says how the check is run on a lent GPU machine and what it printed.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's harness, also where another copy is installed
#: Goals of issue 25.
EPOCH_RATIO_GOAL = 0.5
REPORT_SECONDS_GOAL = 600.0
#: Seconds an interrupted child gets to record what it finished before it is killed.
GRACE_SECONDS = 20.0
#: Seconds kept back at the end of the budget to write the figures.
RESERVE_SECONDS = 10.0
#: The study is not started with less than this left: it would not finish a member.
MIN_STUDY_SECONDS = 30.0
#: Columns of results.csv that hold times (or depend on them): left out of the deterministic diff.
TIMING_COLUMNS = ("train_seconds", "seconds_per_epoch", "seconds_to_target", "queued_seconds")


@dataclass(frozen=True)
class Settings:
    """How big each step is: the GPU check's sizes, or the CPU dry run's."""

    tests: tuple[str, ...]
    bench_models: str
    bench_repeats: int
    bench_samples: int | None
    profile_models: str
    profile_samples: int
    pair: tuple[str, ...]
    pair_profile: str
    pair_overrides: tuple[str, ...]
    study: str | None
    study_profile: str
    #: The longest each step may take (the study: whatever is left of the budget).
    limits: dict[str, float]

    @classmethod
    def choose(cls, tiny: bool) -> "Settings":
        if tiny:
            return cls(tests=("tests/test_torch_backend.py",), bench_models="all", bench_repeats=1, bench_samples=300,
                       profile_models="all", profile_samples=100, pair=("mlp_baseline",),
                       pair_profile="smoke", pair_overrides=(), study=None, study_profile="smoke",
                       limits={"cuda_tests": 300, "bench_epoch": 300, "profile": 300, "deterministic": 600})
        return cls(tests=("tests",), bench_models="all", bench_repeats=5, bench_samples=None,
                   profile_models="all", profile_samples=2500, pair=("mlp_baseline", "cnn_baseline"),
                   pair_profile="full", pair_overrides=("train.epochs=3",), study="report", study_profile="full",
                   limits={"cuda_tests": 150, "bench_epoch": 180, "profile": 90, "deterministic": 180})


class StepFailed(Exception):
    """A step could not give its figures (those it has so far go with it)."""

    def __init__(self, message: str, figures: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.figures = figures or {}


@dataclass
class Child:
    """A finished child process: its exit code, whether the time limit stopped it, and its output's end."""

    code: int
    seconds: float
    timed_out: bool
    tail: str


@dataclass
class StepResult:
    name: str
    status: str = "not run"  # passed | failed | partial (stopped by the budget) | skipped
    seconds: float = 0.0
    error: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)


class Check:
    """The run's paths, settings, clock and output files; runs the children of the steps."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work, self.out = args, work, args.out
        self.settings = Settings.choose(args.tiny)
        self.started = time.monotonic()
        self.deadline = self.started + args.budget
        self.log = args.out / "device_check.log"
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg",
                        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        if args.datasets:
            self.env["HARNESS_DATA"] = str(work / "data")
        self.steps: list[StepResult] = []
        self.environment: dict[str, Any] = {}

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def child(self, label: str, command: list[str], limit: float) -> Child:
        """Run ``command`` from the repository root for at most ``limit`` seconds (and within the budget),
        its output appended to the log. At the limit it gets SIGINT (the harness then records what it
        finished, as after Ctrl-C), then SIGKILL after ``GRACE_SECONDS``."""
        limit = max(1.0, min(limit, self.remaining() - RESERVE_SECONDS - GRACE_SECONDS))
        print(f"  {label}: {' '.join(command)} (at most {limit:.0f} s)", flush=True)
        started = time.monotonic()
        with tempfile.TemporaryFile("w+") as output:
            process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            timed_out = False
            try:
                code = process.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(process.pid, signal.SIGINT)
                try:
                    code = process.wait(timeout=GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    code = process.wait()
            seconds = time.monotonic() - started
            output.seek(0)
            text = output.read()
        with self.log.open("a") as log:
            log.write(f"\n===== {label}: {' '.join(command)}\n{text}\n===== exit {code} after {seconds:.1f} s"
                      f"{' (time limit)' if timed_out else ''}\n")
        return Child(code, seconds, timed_out, text[-3000:])

    def harness_run(self, suite: str, profile: str, reports: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "harness", "run", f"suite={suite}", f"profile={profile}", "backend=torch",
                f"device={self.args.device}", f"reports={reports}", *extra]

    def write(self) -> None:
        """device_check.json and device_check.md as they stand (rewritten after every step)."""
        report = {
            "tiny": self.args.tiny, "device": self.args.device, "budget_seconds": self.args.budget,
            "seconds": round(time.monotonic() - self.started, 1), "environment": self.environment,
            "goals": goals(self.steps), "failed": [s.name for s in self.steps if s.status == "failed"],
            "steps": [asdict(step) for step in self.steps],
        }
        atomic_write(self.out / "device_check.json", json.dumps(report, indent=2, default=str))
        atomic_write(self.out / "device_check.md", markdown(report))


def atomic_write(path: Path, text: str) -> None:
    part = path.with_name(f".{path.name}.part")
    part.write_text(text)
    os.replace(part, path)


# --- steps -------------------------------------------------------------------------------------------


def setup(check: Check) -> dict[str, Any]:
    """The datasets unpacked (``--datasets``) and verified, and the harness this check runs."""
    figures: dict[str, Any] = {"harness": None, "datasets": {}}
    if check.args.datasets:
        figures["unpacked"] = unpack_datasets(check.args.datasets, Path(check.env["HARNESS_DATA"]))
    os.environ.update({key: check.env[key] for key in ("HARNESS_DATA",) if key in check.env})
    import harness
    from harness.data import verify
    from harness.tasks import registered_tasks

    figures["harness"] = str(Path(harness.__file__).resolve().parent)
    figures["tasks"] = sorted(registered_tasks())
    for name in ("mnist", "fashion_mnist"):
        states = verify(name)
        figures["datasets"][name] = "ok" if set(states.values()) == {"ok"} else states
    problems = []
    if not Path(figures["harness"]).is_relative_to(ROOT):
        problems.append(f"harness is imported from {figures['harness']}, not from {ROOT}")
    if "perceptron" not in figures["tasks"]:
        problems.append("the paper's tasks are not registered: install harness's metadata (docs/gpu.md)")
    problems += [f"dataset {name}: {state}" for name, state in figures["datasets"].items() if state != "ok"]
    if problems:
        raise StepFailed("; ".join(problems), figures)
    return figures


def unpack_datasets(source: Path, target: Path) -> list[str]:
    """Each ``source/<dataset>/<file>.gz`` as ``target/<dataset>/<file>`` (verified afterwards)."""
    unpacked = []
    for packed in sorted(source.glob("*/*.gz")):
        destination = target / packed.parent.name / packed.name.removesuffix(".gz")
        destination.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(packed, "rb") as src, destination.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        unpacked.append(f"{packed.parent.name}/{destination.name}")
    return unpacked


def cuda_tests(check: Check) -> dict[str, Any]:
    junit = check.work / "cuda_tests.xml"
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
               "--continue-on-collection-errors", f"--junitxml={junit}", *check.settings.tests]
    child = check.child("cuda tests", command, check.settings.limits["cuda_tests"])
    if not junit.is_file():
        raise StepFailed(f"pytest wrote no report (exit {child.code}): {last_line(child.tail)}")
    figures = junit_counts(junit)
    if child.timed_out:
        raise StepFailed("out of time", figures)
    if figures["failed"] or figures["errors"]:
        raise StepFailed(f"{figures['failed']} failed, {figures['errors']} errors: "
                         f"{', '.join(figures['failures'][:5])}", figures)
    if child.code not in (0, 5):  # 5: nothing selected
        raise StepFailed(f"pytest exited {child.code}: {last_line(child.tail)}", figures)
    if not check.args.tiny and figures["passed"] == 0:
        raise StepFailed("no CUDA test ran (all skipped): PyTorch sees no GPU", figures)
    return figures


def junit_counts(path: Path) -> dict[str, Any]:
    """Passed, failed, errors and skipped tests in a pytest JUnit XML report, and the failures' names."""
    root = ElementTree.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    count = {key: sum(int(suite.get(key, 0)) for suite in suites) for key in ("tests", "failures", "errors", "skipped")}
    failures = [f"{case.get('classname')}::{case.get('name')}" for case in root.iter("testcase")
                if case.find("failure") is not None or case.find("error") is not None]
    return {"passed": count["tests"] - count["failures"] - count["errors"] - count["skipped"],
            "failed": count["failures"], "errors": count["errors"], "skipped": count["skipped"], "failures": failures}


def bench_epoch(check: Check) -> dict[str, Any]:
    settings, output = check.settings, check.work / "bench_epoch.json"
    command = [sys.executable, "benchmarks/bench_epoch.py", "--backend", "torch", "--model", settings.bench_models,
               "--repeats", str(settings.bench_repeats), "--device", check.args.device, "--json", str(output)]
    if settings.bench_samples:
        command += ["--samples", str(settings.bench_samples)]
    child = check.child("bench_epoch", command, settings.limits["bench_epoch"])
    if child.code != 0 or not output.is_file():
        raise StepFailed(failure(child))
    found = json.loads(output.read_text())
    return {"repeats": found["repeats"], "samples": found["samples"] or "all", "rows": [
        {key: row[key] for key in ("model", "plain", "harness", "ratio", "cpu_ratio", "target", "path")}
        | {"ratios": [round(r["ratio"], 3) for r in row["repeats"]]} for row in found["rows"]]}


def profile(check: Check) -> dict[str, Any]:
    settings, output = check.settings, check.work / "profile.json"
    command = [sys.executable, "benchmarks/profile_epoch.py", "--model", settings.profile_models, "--device",
               check.args.device, "--samples", str(settings.profile_samples), "--top", "10", "--json", str(output)]
    child = check.child("profile", command, settings.limits["profile"])
    if not output.is_file():
        raise StepFailed(failure(child))
    found = json.loads(output.read_text())
    errors = [f"{entry['model']} {entry['side']}: {entry['error']}" for entry in found["results"] if "error" in entry]
    if child.code != 0 or errors:
        raise StepFailed("; ".join(errors) or failure(child), found)
    return found


def deterministic(check: Check) -> dict[str, Any]:
    """The pair of suites run twice deterministic and once by default; the diff and the cost."""
    settings = check.settings
    study = pair_study(check.work, settings.pair)
    runs: dict[str, dict[str, list[dict[str, str]]]] = {}
    walls: dict[str, float] = {}
    per_run = settings.limits["deterministic"] / 3
    for label, extra in (("deterministic_a", ("deterministic=true",)), ("deterministic_b", ("deterministic=true",)),
                         ("default", ())):
        reports = check.work / label
        child = check.child(label, check.harness_run(str(study), settings.pair_profile, reports,
                                                     *settings.pair_overrides, *extra), per_run)
        if child.code != 0:
            raise StepFailed(f"{label}: {failure(child)}", {"wall_seconds": walls})
        runs[label], walls[label] = results_rows(reports, settings.pair), round(child.seconds, 1)
    flags = {label: sorted({row.get("deterministic", "") for rows in found.values() for row in rows})
             for label, found in runs.items()}
    differences = diff_rows(runs["deterministic_a"], runs["deterministic_b"])
    figures = {"suites": list(settings.pair), "profile": settings.pair_profile,
               "overrides": list(settings.pair_overrides), "wall_seconds": walls, "recorded_deterministic": flags,
               "identical": not differences, "differences": differences[:20],
               "compared_columns": compared_columns(runs["deterministic_a"]), "cost": cost_rows(runs)}
    if flags != {"deterministic_a": ["True"], "deterministic_b": ["True"], "default": ["False"]}:
        raise StepFailed(f"the records' deterministic column is not what was asked: {flags}", figures)
    return figures


def pair_study(work: Path, suites: tuple[str, ...]) -> Path:
    """A study file of ``suites``, so that one process runs them all (one harness start per run)."""
    path = work / f"device_check_{'_'.join(suites)}.toml"
    members = "".join(f'\n[[members]]\nsuite = "{suite}"\nsection = "{suite}"\n' for suite in suites)
    path.write_text(f'title = "device check: {", ".join(suites)}"\n{members}')
    return path


def results_rows(reports: Path, suites: tuple[str, ...]) -> dict[str, list[dict[str, str]]]:
    """Each suite's results.csv rows from a reports folder holding one run of it."""
    rows = {}
    for suite in suites:
        files = [path for path in reports.glob(f"{suite}/*/results.csv") if not path.parent.is_symlink()]  # not latest/
        if len(files) != 1:
            raise StepFailed(f"{reports}: expected one results.csv of {suite}, found {len(files)}")
        with files[0].open(newline="") as handle:
            rows[suite] = list(csv.DictReader(handle))
    return rows


def compared_columns(runs: dict[str, list[dict[str, str]]]) -> list[str]:
    columns = {column for rows in runs.values() for row in rows for column in row}
    return sorted(column for column in columns if column not in TIMING_COLUMNS)


def diff_rows(first: dict[str, list[dict[str, str]]], second: dict[str, list[dict[str, str]]]) -> list[dict[str, str]]:
    """Every (suite, row, non-timing column) whose text differs between two runs' results.csv."""
    differences = []
    for suite in sorted(set(first) | set(second)):
        a_rows, b_rows = first.get(suite, []), second.get(suite, [])
        if len(a_rows) != len(b_rows):
            differences.append({"suite": suite, "row": "*", "column": "rows", "a": len(a_rows), "b": len(b_rows)})
        for a, b in zip(a_rows, b_rows):
            for column in sorted((set(a) | set(b)) - set(TIMING_COLUMNS)):
                if a.get(column) != b.get(column):
                    differences.append({"suite": suite, "row": a.get("model", "?"), "column": column,
                                        "a": a.get(column), "b": b.get(column)})
    return differences


def cost_rows(runs: dict[str, dict[str, list[dict[str, str]]]]) -> list[dict[str, Any]]:
    """Per model: the default run's training seconds, the deterministic runs' mean, and their ratio."""
    rows = []
    for suite, default_rows in runs["default"].items():
        for index, row in enumerate(default_rows):
            default = float(row["train_seconds"])
            chosen = [float(runs[label][suite][index]["train_seconds"]) for label in ("deterministic_a", "deterministic_b")]
            mean = statistics.fmean(chosen)
            rows.append({"suite": suite, "model": row["model"], "epochs": row.get("epochs"),
                         "default_seconds": round(default, 3), "deterministic_seconds": round(mean, 3),
                         "ratio": round(mean / default, 3) if default else None})
    return rows


def study(check: Check) -> dict[str, Any]:
    """The whole report (or the dry run's small study) within what is left of the budget."""
    settings = check.settings
    name = settings.study or str(pair_study(check.work, settings.pair))
    left = check.remaining() - RESERVE_SECONDS - GRACE_SECONDS
    if left < MIN_STUDY_SECONDS:
        raise StepFailed(f"only {left:.0f} s of the budget left: not started")
    reports = check.work / "study"
    child = check.child("study", check.harness_run(name, settings.study_profile, reports), left)
    figures = study_figures(reports, Path(name).stem)
    figures["wall_seconds_process"] = round(child.seconds, 1)
    if child.timed_out:
        figures["stopped_by_budget"] = True
        return figures
    if child.code != 0:
        raise StepFailed(failure(child), figures)
    return figures


def study_figures(reports: Path, study_name: str) -> dict[str, Any]:
    """Each member's wall time, status and cells from the study run in ``reports`` (finished or not)."""
    from harness.store import ResultsStore

    database = reports / "results.db"
    if not database.is_file():
        return {"study": study_name, "members": [], "total_seconds": 0.0, "complete": False}
    with ResultsStore(database) as store:
        runs = store.runs(study_name)
        if not runs:
            return {"study": study_name, "members": [], "total_seconds": 0.0, "complete": False}
        run = max(runs, key=lambda r: r.created)
        walls = run.environment.get("wall_seconds", {})
        members = []
        for member in run.config["study"]["members"]:
            suite = Path(member["suite"]).stem
            run_id = run.config["members"].get(suite)
            found = {r.run_id: r for r in store.runs(suite)}.get(run_id) if run_id else None
            cells = store.cells(run_id) if found else []
            members.append({
                "suite": suite, "status": found.status if found else "not started",
                "wall_seconds": round(walls[suite], 1) if suite in walls else None,
                "cells_ok": sum(c.result.status == "ok" for c in cells),
                "cells_failed": sum(c.result.status != "ok" for c in cells),
                "train_seconds": round(sum(c.record.get("train_seconds") or 0.0 for c in cells), 1),
            })
    return {"study": study_name, "run_id": run.run_id, "members": members,
            "total_seconds": round(sum(m["wall_seconds"] or 0.0 for m in members), 1),
            "complete": all(m["status"] == "complete" for m in members)}


def failure(child: Child) -> str:
    if child.timed_out:
        return f"out of time after {child.seconds:.0f} s"
    return f"exit {child.code}: {last_line(child.tail)}"


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


STEPS = {"setup": setup, "cuda_tests": cuda_tests, "bench_epoch": bench_epoch, "profile": profile,
         "deterministic": deterministic, "study": study}


# --- figures -----------------------------------------------------------------------------------------


def goals(steps: list[StepResult]) -> list[dict[str, Any]]:
    """Issue 25's goals as far as the finished steps tell: what was measured and whether it met the goal."""
    found = {step.name: step for step in steps}
    out: list[dict[str, Any]] = []
    tests = found.get("cuda_tests")
    if tests and tests.figures:
        f = tests.figures
        out.append({"goal": "the CUDA tests pass", "value": f"{f['passed']} passed, {f['failed']} failed, "
                    f"{f['errors']} errors, {f['skipped']} skipped", "met": tests.status == "passed"})
    bench = found.get("bench_epoch")
    for row in bench.figures.get("rows", []) if bench else []:
        out.append({"goal": f"{row['model']}: harness epoch / plain loop <= {row['target']}",
                    "value": round(row["ratio"], 3), "met": row["ratio"] <= row["target"]})
    pair = found.get("deterministic")
    if pair and "identical" in pair.figures:
        out.append({"goal": "two deterministic runs agree in every non-timing column",
                    "value": "identical" if pair.figures["identical"] else
                    f"{len(pair.figures['differences'])}+ differences", "met": pair.figures["identical"]})
        for row in pair.figures["cost"]:
            out.append({"goal": f"cost of deterministic mode, {row['model']} (deterministic / default seconds)",
                        "value": row["ratio"], "met": None})
    report = found.get("study")
    if report and report.figures.get("members"):
        f = report.figures
        done = sum(m["status"] == "complete" for m in f["members"])
        value = f"{f['total_seconds']:.0f} s" + ("" if f["complete"] else
                                                f" for {done} of {len(f['members'])} members (cut by the budget)")
        out.append({"goal": f"the whole study ({f['study']}) in under {REPORT_SECONDS_GOAL:.0f} s", "value": value,
                    "met": f["total_seconds"] < REPORT_SECONDS_GOAL if f["complete"] else None})
    return out


def markdown(report: dict[str, Any]) -> str:
    """The figures as Markdown: goals, steps, then each step's tables."""
    env = report["environment"]
    lines = [f"# Device check ({'CPU dry run' if report['tiny'] else report['device']})", "",
             f"{env.get('gpu') or 'no GPU'}; torch {env.get('torch')}; Python {env.get('python')}; "
             f"{report['seconds']:.0f} s of a {report['budget_seconds']:.0f} s budget.", "",
             "## Goals", "", "| goal | measured | met |", "| --- | --- | --- |"]
    verdict = {True: "yes", False: "**no**", None: "-"}
    lines += [f"| {g['goal']} | {g['value']} | {verdict[g['met']]} |" for g in report["goals"]]
    lines += ["", "## Steps", "", "| step | status | seconds | note |", "| --- | --- | --- | --- |"]
    lines += [f"| {s['name']} | {s['status']} | {s['seconds']:.1f} | {(s['error'] or '').replace('|', '/')} |"
              for s in report["steps"]]
    steps = {s["name"]: s["figures"] for s in report["steps"]}
    if steps.get("bench_epoch", {}).get("rows"):
        lines += ["", "## Epoch: harness against the plain loop", "",
                  f"Medians of {steps['bench_epoch']['repeats']} repeats, "
                  f"{steps['bench_epoch']['samples']} training images.", "",
                  "| model | plain s | harness s | ratio | CPU-time ratio | goal | each repeat | harness path |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['model']} | {r['plain']:.3f} | {r['harness']:.3f} | {r['ratio']:.3f} | {r['cpu_ratio']:.3f} "
                  f"| {r['target']} | {', '.join(map(str, r['ratios']))} | {r['path']} |"
                  for r in steps["bench_epoch"]["rows"]]
    for entry in steps.get("profile", {}).get("results", []):
        if "error" in entry:
            lines += ["", f"### Profile: {entry['model']}, {entry['side']}: {entry['error']}"]
            continue
        busy = entry["device_busy_seconds"]
        lines += ["", f"### Profile: {entry['model']}, {entry['side']} ({entry['steps']} steps, "
                  f"{entry['wall_seconds']:.3f} s" + (f", device busy {busy:.3f} s)" if busy is not None else ")")]
        for kind, title in (("kernels", "kernel (self device us)"), ("host", "host operation (self CPU us)")):
            if entry[kind]:
                lines += ["", f"| {title} | us | calls |", "| --- | --- | --- |"]
                lines += [f"| `{t['name'][:80]}` | {t['self_us']:.0f} | {t['calls']} |" for t in entry[kind]]
    pair = steps.get("deterministic", {})
    if "cost" in pair:
        lines += ["", "## Deterministic mode", "",
                  f"{', '.join(pair['suites'])} ({pair['profile']} {' '.join(pair['overrides'])}): two deterministic "
                  f"runs {'identical' if pair['identical'] else 'DIFFERENT'} in {len(pair['compared_columns'])} "
                  f"non-timing columns; process wall seconds {pair['wall_seconds']}.", "",
                  "| model | epochs | default s | deterministic s | ratio |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r['model']} | {r['epochs']} | {r['default_seconds']} | {r['deterministic_seconds']} | "
                  f"{r['ratio']} |" for r in pair["cost"]]
        lines += [f"- differs: {d['suite']} / {d['row']} / {d['column']}: {d['a']} vs {d['b']}"
                  for d in pair["differences"]]
    members = steps.get("study", {}).get("members", [])
    if members:
        lines += ["", f"## Study {steps['study']['study']}: wall time per member", "",
                  "| member | status | wall s | train s | cells ok | cells failed |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {m['suite']} | {m['status']} | {m['wall_seconds']} | {m['train_seconds']} | {m['cells_ok']} "
                  f"| {m['cells_failed']} |" for m in members]
        lines += [f"| all | {'complete' if steps['study']['complete'] else 'incomplete'} | "
                  f"{steps['study']['total_seconds']} | | | |"]
    return "\n".join(lines) + "\n"


def environment(device: str) -> dict[str, Any]:
    """Python, torch and the GPU, read without importing a framework (the children do that)."""
    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                            "cpus": os.cpu_count(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    for package in ("torch", "pydantic", "numpy"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = None
    if device.startswith("cuda") and shutil.which("nvidia-smi"):
        query = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
        info["gpu"] = query.stdout.strip().splitlines()[0] if query.returncode == 0 and query.stdout.strip() else None
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for device_check.json, .md and .log")
    parser.add_argument("--device", default=None, help="cuda (default), or cpu (the default with --tiny)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole check; the study gets what the other steps leave (default 450)")
    parser.add_argument("--datasets", type=Path, help="folder of gzipped IDX files to unpack and use")
    parser.add_argument("--work", type=Path, help="folder for reports and data (default: a temporary folder)")
    parser.add_argument("--tiny", action="store_true", help="the CPU dry run: every step with tiny settings")
    args = parser.parse_args(argv)
    args.device = args.device or ("cpu" if args.tiny else "cuda")
    args.budget = args.budget or (900.0 if args.tiny else 450.0)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="device_check-"))
    work.mkdir(parents=True, exist_ok=True)
    check = Check(args, work)
    check.log.write_text("")
    check.environment = environment(args.device)
    for name, step in STEPS.items():
        result = StepResult(name, "running")
        check.steps.append(result)
        check.write()
        print(f"{name} ...", flush=True)
        started = time.monotonic()
        try:
            result.figures = step(check)
            stopped = result.figures.get("stopped_by_budget")
            result.status = "partial" if stopped else "passed"
            result.error = "stopped by the budget; the finished members are reported" if stopped else None
        except StepFailed as error:
            result.status, result.error, result.figures = "failed", str(error), error.figures
        except Exception as error:  # noqa: BLE001 - a broken step must not keep the others from running
            result.status, result.error = "failed", f"{type(error).__name__}: {error}"
        result.seconds = round(time.monotonic() - started, 1)
        print(f"{name}: {result.status} in {result.seconds:.0f} s{': ' + result.error if result.error else ''}",
              flush=True)
        check.write()
    print((args.out / "device_check.md").read_text())
    return 1 if any(step.status == "failed" for step in check.steps) else 0


if __name__ == "__main__":
    raise SystemExit(main())
