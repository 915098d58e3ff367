"""Fill the reports filesystem at random moments of a run, free the space, rerun; then check nothing was lost.

    python benchmarks/storage_faults.py [--faults 20] [--seed 0] [--models 8] [--keep DIR] [--stand-in]

The tiny classify suite of ``benchmarks/fault_injection.py`` is run with ``harness run`` in a
subprocess, its reports on a small filesystem of their own (a 64 MiB tmpfs, mounted here: root only).
Once the run has started, after a random delay drawn over the length of an undisturbed run, a filler
file takes every free byte of that filesystem; the run must stop with one line, ``harness: storage
fault: PATH: no space left on device; ...``, and exit code 3. The filler is deleted (space freed)
and the same command runs again, resuming. A run that finished before the disk filled ends that run;
the next one starts a new run. At the end one undisturbed rerun finishes the last run, and the checks
are those of the kill -9 injection (``PRAGMA integrity_check`` ok, every run complete with every cell
exactly once, ``results.csv`` equal to the store, no lease left) plus: no temporary file anywhere
(``.*.tmp``, ``.*.tmp.png``, ``.latest.*``) and every fault reported as that one line.

Where mounting is impossible (not root, no tmpfs), ``--stand-in`` (or the automatic fallback) runs
the harness through :mod:`benchmarks.full_disk`, which makes every write of the process fail with
ENOSPC from the moment it receives SIGUSR1: the same harness code paths, without a real full disk.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fault_injection import ROOT, Report, check, command, environment, write_suite  # noqa: E402

#: The reports filesystem's size: room for every run of a session of 20 faults (a fault that comes after
#: its run ended lets that run finish, so a session makes up to about 50 runs of about 0.6 MiB each) above
#: the 1 MiB a run needs free to start; filling it is one write of tens of MiB in memory.
FILESYSTEM_SIZE = "64m"
#: The line a storage fault must print (then the path and its cause).
FAULT_LINE = "harness: storage fault: "


@contextlib.contextmanager
def small_filesystem(folder: Path, size: str) -> Iterator[bool]:
    """A tmpfs of ``size`` mounted on ``folder`` for the block; yields False (nothing mounted) where
    this process may not mount one."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "--lazy", str(folder)], check=True)  # detached at once, freed once unused


def fill(folder: Path) -> Path:
    """Take every free byte of ``folder``'s filesystem with one file; returns it (delete it to free the space)."""
    filler = folder / "filler"
    chunk = b"\0" * (64 << 10)
    with open(filler, "wb", buffering=0) as stream:
        with contextlib.suppress(OSError):
            while True:
                stream.write(chunk)
        with contextlib.suppress(OSError):
            while True:
                stream.write(b"\0" * 512)
    return filler


@dataclass
class Attempt:
    delay: float | None
    returncode: int
    faulted: bool
    message: str  # the fault's line on stderr ("" when it ended otherwise)
    seconds: float  # from the run's start to the process's end


@dataclass
class FaultReport:
    """What a storage fault-injection session did and found."""

    faults: int
    stand_in: bool
    store: Report
    attempts: list[Attempt] = field(default_factory=list)
    temporaries: list[str] = field(default_factory=list)
    bad_messages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.store.ok and not self.temporaries and not self.bad_messages

    def as_dict(self) -> dict:
        return {
            "faults": sum(a.faulted for a in self.attempts), "filesystem": "stand-in" if self.stand_in else "tmpfs",
            "invocations": len(self.attempts), "runs": self.store.runs, "cells_per_run": self.store.cells_expected,
            "cells_lost": self.store.cells_lost, "cells_duplicated": self.store.cells_duplicated,
            "temporary_files": len(self.temporaries), "integrity_check": self.store.integrity,
            "csv_mismatches": len(self.store.csv_mismatches), "leases_left": self.store.leases_left,
            "bad_messages": len(self.bad_messages), "ok": self.ok,
        }


def invoke(suite: Path, reports: Path, delay: float | None, stand_in: bool, timeout: float = 600) -> Attempt:
    """Run the suite once; ``delay`` seconds after its run starts, fill the disk (or, with the stand-in,
    signal the process that its disk is full) if it is still running. The filler is removed after."""
    argv = command(suite, reports)
    if stand_in:
        argv = [sys.executable, "-m", "benchmarks.full_disk", *argv[3:]]  # after "python -m harness"
    process = subprocess.Popen(argv, cwd=ROOT, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    started = threading.Event()
    errors: list[str] = []

    def read_out() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            if line.startswith(("starting run", "resuming run")):
                started.set()
        started.set()

    def read_err() -> None:
        errors.extend(process.stderr)  # type: ignore[arg-type]

    readers = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
    for reader in readers:
        reader.start()
    started.wait(timeout)
    began = time.perf_counter()
    filler = None
    if delay is not None:
        try:
            process.wait(delay)
        except subprocess.TimeoutExpired:
            if stand_in:
                process.send_signal(signal.SIGUSR1)
            else:
                filler = fill(reports)
    returncode = process.wait(timeout)
    seconds = time.perf_counter() - began
    for reader in readers:
        reader.join()
    if filler is not None:
        filler.unlink()
    faulted = returncode == 3
    if not faulted and returncode != 0:
        raise RuntimeError(f"harness run exited {returncode}:\n{''.join(errors[-20:])}")
    return Attempt(delay, returncode, faulted, "".join(errors).strip() if faulted else "", seconds)


def temporaries(reports: Path) -> list[str]:
    """Temporary files anywhere under ``reports`` (what a write cut short would leave)."""
    return [str(path) for path in reports.rglob("*")
            if path.name.endswith((".tmp", ".tmp.png")) or path.name.startswith(".latest.")]


def inject(faults: int, seed: int = 0, models: int = 8, folder: Path | None = None,
           stand_in: bool = False, window: float | None = None) -> FaultReport:
    """The whole experiment in ``folder`` (a temporary one by default); returns its report."""
    folder = Path(folder or tempfile.mkdtemp(prefix="storage-faults-"))
    suite = write_suite(folder, models)
    reports = folder / "reports"
    with small_filesystem(reports, FILESYSTEM_SIZE) as mounted:
        stand_in = stand_in or not mounted
        if window is None:  # faults are drawn over the length of one undisturbed run, from its start
            window = invoke(suite, folder / "undisturbed", None, stand_in).seconds
        report = FaultReport(faults, stand_in, Report(faults))
        generator = random.Random(seed)
        while sum(a.faulted for a in report.attempts) < faults:
            report.attempts.append(invoke(suite, reports, generator.uniform(0, window), stand_in))
        report.attempts.append(invoke(suite, reports, None, stand_in))  # space freed: finish the last run
        check(reports, suite, report.store)
        report.temporaries = temporaries(reports)
        report.bad_messages = [a.message for a in report.attempts if a.faulted and not (
            a.message.startswith(FAULT_LINE) and len(a.message.splitlines()) == 1
            and ": no space left on device; " in a.message)]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="folder to run in and keep (default: a temporary one)")
    parser.add_argument("--stand-in", action="store_true", help="fake the full disk even where a tmpfs can be mounted")
    args = parser.parse_args()
    report = inject(args.faults, args.seed, args.models, args.keep, args.stand_in)
    for attempt in report.attempts:
        what = f"disk filled {attempt.delay:.2f} s in" if attempt.delay is not None else "undisturbed"
        print(f"  {what}: exit {attempt.returncode}" + (f": {attempt.message}" if attempt.message else ""))
    for problem in report.store.csv_mismatches + report.temporaries + report.bad_messages:
        print(f"  PROBLEM {problem}")
    print(json.dumps(report.as_dict(), indent=1))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
