"""The ``harness`` command line.

    harness run suite=NAME [profile=smoke|full] [backend=torch|tensorflow|all] [device=cpu|cuda|auto]
                [seed=N] [key=value ...]
    harness suite=NAME ...            (the same as ``harness run``: what ``docker run harness suite=...`` does)
    harness list | data | report | compare | history | baseline | nightly | merge | publish | export
                                      (``harness COMMAND --help``)

Arguments are Hydra-style ``key=value`` pairs. Each command lives in ``harness.commands.<name>`` with a
``main(argv, console) -> exit code``, its usage in the docstring's first line and its ``OPTIONS`` (``--help``
is answered here, from those); a :class:`~harness.errors.UserError` raised anywhere is caught
here once, printed as one line, and exits 2. A storage fault (a full disk, a read-only folder) is one
line and exit 3; SIGTERM is handled as Ctrl-C is, and exits 143.
"""

from __future__ import annotations

import contextlib
import importlib
import signal
import sys
from collections.abc import Iterator

from harness.errors import (STORAGE_ERRNOS, CellsFailed, RegressionFound, StorageError, Terminated, UserError,
                            storage_error)

COMMANDS = {
    "run": "train and evaluate a suite's cells, store results, render tables and plots",
    "list": "the suites: title, task, the report table each mirrors",
    "data": "fetch and verify the datasets; print where they are",
    "report": "re-render a stored run's tables and plots (no retraining)",
    "compare": "compare a run against a baseline; exit 1 on regression",
    "history": "a metric of a suite over its stored runs",
    "baseline": "write or show the baseline files runs are compared against",
    "nightly": "run the nightly profile, compare with the baseline, write the HTML report",
    "merge": "bring the runs of other results stores (other machines) into this one",
    "publish": "write the history of all stored runs as a static site of graphs",
    "export": "log stored runs to MLflow (export mlflow tracking_uri=URI)",
}


def usage() -> str:
    lines = ["usage: harness COMMAND [key=value ...]   (harness suite=NAME ... means harness run)", "", "commands:"]
    lines += [f"  {name:<9} {summary}" for name, summary in COMMANDS.items()]
    lines += ["", "harness COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``harness`` script; returns the exit code."""
    from rich.console import Console

    argv = list(sys.argv[1:] if argv is None else argv)
    console = Console(highlight=False)
    if not console.is_terminal:
        # Logs and CI captures: wide enough for the report tables instead of rich's default of 80.
        console = Console(highlight=False, width=200)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)  # one line, however long
    if not argv or argv[0] in ("-h", "--help", "help"):
        console.print(usage(), markup=False)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from harness import __version__

        console.print(f"harness {__version__}")
        return 0
    command = "run" if "=" in argv[0] else argv.pop(0)
    if command not in COMMANDS:
        errors.print(f"harness: unknown command {command!r}; commands: {', '.join(COMMANDS)}", markup=False)
        return 2
    try:
        module = importlib.import_module(f"harness.commands.{command}")
        if any(arg in ("-h", "--help") for arg in argv):
            from harness.commands.args import command_help

            console.print(command_help(module), markup=False)
            return 0
        with sigterm_as_interrupt():
            return module.main(argv, console)
    except UserError as error:
        errors.print(f"harness: error: {error}", markup=False, soft_wrap=True)
        return UserError.exit_code
    except (CellsFailed, RegressionFound) as error:
        errors.print(f"harness: {error}", markup=False, soft_wrap=True)
        return error.exit_code
    except (StorageError, OSError) as error:
        fault = storage_fault(error)
        if fault is None:
            raise
        errors.print(f"harness: storage fault: {fault}", markup=False, soft_wrap=True)
        return StorageError.exit_code
    except Terminated:
        errors.print("harness: terminated (SIGTERM); finished cells are stored (run the same command again to resume)")
        return Terminated.exit_code
    except KeyboardInterrupt:
        errors.print("harness: interrupted; finished cells are stored (run the same command again to resume)")
        return 130


def storage_fault(error: BaseException) -> StorageError | None:
    """The storage fault ``error`` is (a StorageError, or an OSError of a write the disk refused), or
    None when it is a bug that should keep its traceback."""
    if isinstance(error, StorageError):
        return error
    if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
        return storage_error(error)
    return None


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`~harness.errors.Terminated` (a KeyboardInterrupt) in the main thread, so a
    CI timeout or ``kill`` unwinds a run as Ctrl-C does: files written, lease released."""

    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread (a test calling main from a thread): leave SIGTERM alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
