"""Kill -9 a running suite at random moments, rerun it after each kill, then check nothing was lost.

    python benchmarks/fault_injection.py [--kills 20] [--seed 0] [--models 6] [--keep DIR]

A small classify suite (8 tiny MLPs, 3 epochs on 600 MNIST images, so one run takes seconds) is run
with ``harness run`` in a subprocess; once the run has started (its "starting/resuming run" line),
the process is killed with SIGKILL after a random delay drawn over the length of an undisturbed run:
at that moment, or at the first SQLite commit or results-file write seen after it (the three targets
take turns), so kills land in cells, in commits and in file writes. After each kill the same command is run
again and resumes. A rerun that finished before its kill came ends that run; the next one starts a
new run. At the end one undisturbed rerun finishes the last run, and the checks are:

- ``PRAGMA integrity_check`` of ``results.db`` says ``ok``;
- every run of the suite is complete and holds every cell of the suite exactly once;
- each run's ``results.csv`` has exactly the store's records, and no temporary file is left over;
- no lease is left behind.

``tests/test_runner.py`` runs this with a few kills; the figures for 20 go in the closing note.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What a kill aims at: any moment, or (the first seen after the delay) an open SQLite write
#: transaction (its rollback journal exists) or a results file being written (its temporary file exists).
TARGETS = ("any moment", "a commit", "a file write")
#: The two names map to the same readable folder name; the run must keep their files apart.
COLLIDING = ("Net A", "Net_A")


def tiny_suite(models: int = 8) -> str:
    """A classify suite of ``models`` small MLPs (the first two named so their folder names collide)."""
    names = list(COLLIDING) + [f"Net {index}" for index in range(2, models)]
    blocks = [
        f'[[models]]\nname = "{name}"\nlayers = [{{ type = "flatten" }}, {{ type = "dense", units = {8 + 4 * index} }}, '
        f'{{ type = "dense", units = 10, activation = "softmax" }}]\n'
        for index, name in enumerate(names[:models])
    ]
    return (
        'title = "Tiny MLPs"\ntask = "classify"\n\n[data]\ndataset = "mnist"\n\n'
        "[train]\nepochs = 3\nbatch_size = 50\n\n"
        '[profiles.smoke]\n"data.train_samples" = 600\n"data.test_samples" = 200\n\n[profiles.full]\n\n'
        "[options]\nplots = false\n\n" + "\n".join(blocks)
    )


def write_suite(folder: Path, models: int = 8) -> Path:
    """The tiny suite as ``folder/tiny.toml``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.toml"
    path.write_text(tiny_suite(models))
    return path


def command(suite: Path, reports: Path) -> list[str]:
    return [sys.executable, "-m", "harness", "run", f"suite={suite}", "profile=smoke", f"reports={reports}"]


def environment() -> dict[str, str]:
    # Unbuffered, so the "run" line is seen the moment it is printed; one thread, as on a shared machine.
    return {**os.environ, "PYTHONUNBUFFERED": "1", "HARNESS_THREADS": os.environ.get("HARNESS_THREADS", "1")}


@dataclass
class Attempt:
    """One invocation: how long after its run started it was killed (None: not killed), and its exit code."""

    delay: float | None
    returncode: int
    killed: bool
    cells_before: int
    cells_after: int
    phase: str  # where the kill landed: one of PHASES, or "not killed"
    target: str = TARGETS[0]


@dataclass
class Report:
    """What a fault-injection session did and found."""

    kills: int
    attempts: list[Attempt] = field(default_factory=list)
    undisturbed_seconds: float = 0.0
    runs: int = 0
    cells_expected: int = 0
    cells_lost: int = 0
    cells_duplicated: int = 0
    integrity: str = ""
    csv_mismatches: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    leases_left: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.integrity == "ok" and not self.cells_lost and not self.cells_duplicated
                and not self.csv_mismatches and not self.leftovers and not self.leases_left)

    def as_dict(self) -> dict:
        killed = [a for a in self.attempts if a.killed]
        phases = {phase: sum(a.phase == phase for a in killed) for phase in PHASES}
        targets = {target: sum(a.target == target for a in killed) for target in TARGETS}
        return {
            "kills": len(killed), "kills_by_target": targets, "kills_by_phase": phases,
            "invocations": len(self.attempts), "runs": self.runs, "cells_per_run": self.cells_expected,
            "cells_lost": self.cells_lost, "cells_duplicated": self.cells_duplicated, "integrity_check": self.integrity,
            "csv_mismatches": len(self.csv_mismatches), "leftover_files": len(self.leftovers),
            "leases_left": self.leases_left, "undisturbed_run_s": round(self.undisturbed_seconds, 2),
            "total_s": round(self.seconds, 1), "ok": self.ok,
        }


PHASES = ("before the run was created", "in the cells", "after the last cell (status, files, tables, plots)",
          "after the status commit")


def newest(reports: Path) -> tuple[str, int]:
    """The newest run's status and its committed cells (("", 0) before the first)."""
    database = reports / "results.db"
    if not database.exists():
        return "", 0
    with sqlite3.connect(database) as db:
        row = db.execute("SELECT run_id, status FROM runs ORDER BY created DESC, run_id DESC LIMIT 1").fetchone()
        if row is None:
            return "", 0
        return row[1], db.execute("SELECT COUNT(*) FROM cells WHERE run_id = ?", (row[0],)).fetchone()[0]


def phase(status: str, cells: int, total: int) -> str:
    """Where a kill landed, told from what it left in the store."""
    if not status:
        return PHASES[0]
    if status == "running":
        return PHASES[1] if cells < total else PHASES[2]
    return PHASES[3]


def in_progress(reports: Path, target: str) -> bool:
    if target == "a commit":
        return (reports / "results.db-journal").exists()
    return any(reports.glob("*/*/.results.*.tmp"))


def invoke(suite: Path, reports: Path, delay: float | None, target: str = TARGETS[0],
           timeout: float = 600) -> tuple[int, bool, float]:
    """Run the suite once; ``delay`` seconds after its run starts (then, for a commit or a file write,
    at the first one seen) SIGKILL it, if it is still running.

    Returns the exit code, whether the kill landed, and the seconds from the run's start to its end.
    """
    process = subprocess.Popen(command(suite, reports), cwd=ROOT, env=environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    started = threading.Event()
    lines: list[str] = []

    def read() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith(("starting run", "resuming run")):
                started.set()
        started.set()  # the process ended without starting a run: nothing to wait for

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    started.wait(timeout)
    began = time.perf_counter()
    killed = False
    if delay is not None:
        try:
            process.wait(delay)
        except subprocess.TimeoutExpired:
            while target != TARGETS[0] and process.poll() is None and not in_progress(reports, target):
                time.sleep(0.0002)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                killed = True
    returncode = process.wait(timeout)
    elapsed = time.perf_counter() - began
    reader.join()
    if not killed and returncode != 0:
        raise RuntimeError(f"harness run exited {returncode}:\n{''.join(lines[-20:])}")
    return returncode, killed, elapsed


def planned_keys(suite: Path) -> set[str]:
    """The keys of every cell of the suite (what a complete run must hold, once each)."""
    sys.path.insert(0, str(ROOT))
    from harness.tasks import load_suite, task_for

    loaded = load_suite(str(suite), "smoke")
    return {cell.key for cell in task_for(loaded.task).plan(loaded)}


def check(reports: Path, suite: Path, report: Report) -> None:
    """Fill in the report's findings from the store and the run folders."""
    expected = planned_keys(suite)
    report.cells_expected = len(expected)
    with sqlite3.connect(reports / "results.db") as db:
        report.integrity = "; ".join(row[0] for row in db.execute("PRAGMA integrity_check"))
        runs = [row[0] for row in db.execute("SELECT run_id FROM runs ORDER BY created")]
        report.runs = len(runs)
        report.leases_left = db.execute("SELECT COUNT(*) FROM leases").fetchone()[0]
        for run_id in runs:
            status = db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
            keys = [row[0] for row in db.execute("SELECT key FROM cells WHERE run_id = ? AND status = 'ok'", (run_id,))]
            report.cells_lost += len(expected - set(keys))
            report.cells_duplicated += len(keys) - len(set(keys))
            if status != "complete":
                report.csv_mismatches.append(f"{run_id}: status {status}")
            stored = [json.loads(row[0]) for row in db.execute("SELECT record FROM cells WHERE run_id = ?", (run_id,))]
            with open(reports / "tiny" / run_id / "results.csv", newline="") as handle:
                found = list(csv.DictReader(handle))
            if sorted(row["model"] for row in found) != sorted(record["model"] for record in stored):
                report.csv_mismatches.append(f"{run_id}: results.csv has {len(found)} rows, the store {len(stored)}")
            else:
                report.csv_mismatches += csv_differences(run_id, found, stored)
    report.leftovers = [str(path) for path in reports.rglob("*") if path.name.endswith(".tmp")]


def csv_differences(run_id: str, rows: list[dict], records: list[dict]) -> list[str]:
    """Each value of results.csv against the store's record of the same model (as text, as csv writes it)."""
    by_model = {record["model"]: record for record in records}
    problems = []
    for row in rows:
        record = by_model[row["model"]]
        for key, value in record.items():
            text = "" if value is None else str(value)
            if row.get(key) != text:
                problems.append(f"{run_id} {row['model']} {key}: csv {row.get(key)!r}, store {text!r}")
    return problems


def inject(kills: int, seed: int = 0, models: int = 8, folder: Path | None = None,
           window: float | None = None) -> Report:
    """The whole experiment in ``folder`` (a temporary one by default); returns its report.

    Kills are drawn over ``window`` seconds after a run starts; by default over the length of one
    undisturbed run, measured first in a store of its own.
    """
    start = time.perf_counter()
    folder = Path(folder or tempfile.mkdtemp(prefix="fault-injection-"))
    suite = write_suite(folder, models)
    report = Report(kills)
    if window is None:
        _, _, window = invoke(suite, folder / "undisturbed", None)
    report.undisturbed_seconds = window
    reports = folder / "reports"
    total = len(planned_keys(suite))
    generator = random.Random(seed)
    done = 0
    while done < kills:
        delay = generator.uniform(0, report.undisturbed_seconds)
        target = TARGETS[done % len(TARGETS)]
        status, before = newest(reports)
        returncode, killed, _ = invoke(suite, reports, delay, target)
        status, after = newest(reports)
        report.attempts.append(Attempt(delay, returncode, killed, before if status == "running" else 0, after,
                                       phase(status, after, total) if killed else "not killed", target))
        done += killed
    returncode, _, _ = invoke(suite, reports, None)  # finish the last run
    report.attempts.append(Attempt(None, returncode, False, newest(reports)[1], newest(reports)[1], "not killed"))
    check(reports, suite, report)
    report.seconds = time.perf_counter() - start
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="folder to run in and keep (default: a temporary one)")
    args = parser.parse_args()
    report = inject(args.kills, args.seed, args.models, args.keep)
    for attempt in report.attempts:
        what = (f"killed at {attempt.target} {attempt.delay:.2f} s in, {attempt.phase}" if attempt.killed
                else "ran to the end")
        print(f"  {what}: cells {attempt.cells_before} -> {attempt.cells_after} (exit {attempt.returncode})")
    for problem in report.csv_mismatches + report.leftovers:
        print(f"  PROBLEM {problem}")
    print(json.dumps(report.as_dict(), indent=1))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
