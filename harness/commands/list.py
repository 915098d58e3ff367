"""harness list

Prints every suite: name, title, task, the report table it mirrors, and its models and profiles; then
every study (a file naming member suites, run whole by ``harness run suite=STUDY``) apart from them.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.commands.args import parse_arguments
from harness.errors import UserError
from harness.suite.load import suite_names, suites_dir
from harness.suite.schema import Suite
from harness.suite.study import Study, is_study_file, load_study
from harness.tasks import load_suite


def suites() -> list[Suite]:
    """Every suite on disk, validated (a broken one is reported by name)."""
    return [load_suite(name) for name in suite_names()]


def studies() -> list[Study]:
    """Every study on disk, validated."""
    return [load_study(path) for path in sorted(suites_dir().glob("*.toml")) if is_study_file(path)]


def main(argv: list[str], console: Console) -> int:
    parse_arguments(argv, {}, allow_overrides=False)
    found = suites()
    if not found:
        raise UserError("no suites found")
    table = Table(title="Suites", header_style="bold")
    for column in ("suite", "title", "task", "mirrors", "models", "profiles"):
        table.add_column(column, overflow="fold")
    for suite in found:
        table.add_row(suite.name, suite.title, suite.task, suite.mirrors, str(len(suite.models)) if suite.models else "–",
                      ", ".join(suite.profiles))
    console.print(table)
    found_studies = studies()
    if found_studies:
        table = Table(title="Studies (harness run suite=STUDY runs every member in one run)", header_style="bold")
        for column in ("study", "title", "members", "profiles"):
            table.add_column(column, overflow="fold")
        for study in found_studies:
            table.add_row(study.name, study.title, ", ".join(Path(m.suite).stem for m in study.members),
                          ", ".join(study.profiles))
        console.print(table)
    return 0
