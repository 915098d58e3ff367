"""harness list

Prints every suite: name, title, task, the report table it mirrors, and its models and profiles.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from harness.commands.args import option_help, parse_arguments
from harness.errors import UserError
from harness.suite.load import suite_names
from harness.suite.schema import Suite
from harness.tasks import load_suite


def suites() -> list[Suite]:
    """Every suite on disk, validated (a broken one is reported by name)."""
    return [load_suite(name) for name in suite_names()]


def main(argv: list[str], console: Console) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        console.print(option_help(__doc__.splitlines()[0], {}), markup=False)
        return 0
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
    return 0
