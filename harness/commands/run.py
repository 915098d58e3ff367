"""harness run suite=NAME [profile=smoke|full] [backend=torch|tensorflow|all] [device=cpu|cuda|auto] [seed=N] [deterministic=true] [key=value ...]

Loads and validates the suite (with the profile and overrides), checks that every framework and
device it needs is there, then runs each cell, committing it to the results store as soon as it
finishes, and renders the tables and plots. Everything that can be wrong with the input is found
before the first file is written. A run of the same suite and settings that did not finish is
resumed: its finished cells are skipped.
"""

from __future__ import annotations

from rich.console import Console

from harness.study import runner as study_runner
from harness.commands.args import parse_arguments
from harness.errors import CellsFailed, UserError, echo
from harness.runner import RunRequest, dry_run, plan, run
from harness.store import check_reports
from harness.suite.overrides import Override
from harness.suite.schema import BACKEND_NAMES

OPTIONS = {
    "suite": "suite name (harness list) or path to a .toml file",
    "profile": "smoke | full (default full: the report's settings)",
    "backend": "torch | tensorflow | all (sets matrix.backends)",
    "device": "cpu | cuda | auto (sets matrix.devices)",
    "seed": "an integer (sets matrix.seeds)",
    "deterministic": "true | false: deterministic kernels, a GPU run repeatable bit for bit (sets train.deterministic)",
    "model": "run only these models: comma-separated names",
    "resume": "RUN_ID to continue, or 'no' for a new run (default: continue an unfinished run of the same settings)",
    "reports": "reports folder (default $HARNESS_REPORTS or ./reports)",
    "container": "cpu | gpu: run inside the harness Docker image",
    "executor": "local | ray (default local: one cell after another in this process)",
    "ray_address": "executor=ray: auto | HOST:PORT | ray://HOST:10001 (default: start Ray on this machine)",
    "cells_per_gpu": "executor=ray: CUDA cells sharing one GPU (default 1)",
    "threads_per_cell": "executor=ray: CPUs (framework threads) per cell (default: what a local run uses)",
    "dry_run": "true: list the cells with their FLOPs and estimated time, then stop (nothing written)",
    "max_hours": "refuse (exit 2) a run estimated at more hours than this, e.g. in CI",
}
RAY_OPTIONS = {"ray_address": "address", "cells_per_gpu": "cells_per_gpu", "threads_per_cell": "threads_per_cell"}
# Shortcuts a user of Hydra/pytest expects, mapped to the suite fields they set.
SHORTCUTS = {"backend": "matrix.backends", "device": "matrix.devices", "seed": "matrix.seeds"}
# Shortcuts for one setting, whose value is the setting's own (not a list of them).
SETTING_SHORTCUTS = {"deterministic": "train.deterministic"}


def request_from_arguments(argv: list[str]) -> RunRequest:
    """Turn ``key=value`` arguments into a :class:`RunRequest` (shortcuts become suite overrides)."""
    args = parse_arguments(argv, OPTIONS, allow_overrides=True)
    options = args.options
    if "suite" not in options:
        raise UserError("missing suite=NAME; see harness list")
    overrides: list[Override] = []
    for option, key in SHORTCUTS.items():
        if option in options:
            value = options[option]
            if option == "backend" and value == "all":
                values: list = list(BACKEND_NAMES)
            else:
                values = [Override.parse(f"{key}={value}").value]
            overrides.append(Override(key, values, f"{option}="))
    overrides += [Override(key, Override.parse(f"{key}={options[option]}").value, f"{option}=")
                  for option, key in SETTING_SHORTCUTS.items() if option in options]
    container = options.get("container")
    if container not in (None, "cpu", "gpu"):
        raise UserError(f"container={echo(container)}: allowed: cpu, gpu")
    executor = options.get("executor", "local")
    executor_options = {name: options[option] for option, name in RAY_OPTIONS.items() if option in options}
    if executor_options and executor != "ray":
        raise UserError(f"{', '.join(o for o in RAY_OPTIONS if o in options)}: only with executor=ray")
    dry_run = options.get("dry_run", "false").lower()
    if dry_run not in ("true", "false"):
        raise UserError(f"dry_run={echo(dry_run)}: allowed: true, false")
    try:
        max_hours = float(options["max_hours"]) if "max_hours" in options else None
    except ValueError:
        raise UserError(f"max_hours={echo(options['max_hours'])}: expected a number of hours") from None
    return RunRequest(
        suite=options["suite"],
        profile=options.get("profile", "full"),
        overrides=overrides + args.overrides,
        models=[name.strip() for name in options["model"].split(",")] if "model" in options else None,
        resume=options.get("resume"),
        reports=args.reports,
        container=container,
        executor=executor,
        executor_options=executor_options,
        dry_run=dry_run == "true",
        max_hours=max_hours,
    )


def main(argv: list[str], console: Console) -> int:
    request = request_from_arguments(argv)
    if request.dry_run:
        if study_runner.study_path(request.suite) is not None:
            study_runner.dry_run_study(request, console)
        else:
            dry_run(request, console)
        return 0
    if study_runner.study_path(request.suite) is not None:
        return study_runner.run_command(request, console)
    if request.container:
        return launch_in_container(request, argv, console)
    outcome = run(request, console)
    console.print(f"results: {outcome.folder}", markup=False)
    if outcome.failed:
        raise CellsFailed(f"{len(outcome.failed)} cell(s) failed: {'; '.join(outcome.failed)}")
    return 0


def launch_in_container(request: RunRequest, argv: list[str], console: Console) -> int:
    """Run the same command inside the harness image, with reports and the data cache mounted."""
    from harness import container
    from harness.data import data_dir

    suite, _, _ = plan(request)  # a bad suite or override fails here, before any image is built
    check_reports(request.reports, suite.name, request.resume)  # and a reports folder the container cannot use
    inner = [arg for arg in argv if not arg.startswith(("container=", "reports="))]
    container.launch(request.container, inner, reports_dir=request.reports.resolve(), data_dir=data_dir(),
                     console=console, datasets=[suite.data.dataset])
    return 0
