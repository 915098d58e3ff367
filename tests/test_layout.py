"""The package's layout: each folder (or top-level module) is one stage of the flow, and imports only
the stages below it, so the flow suite -> cells -> executor -> task -> backend -> store -> report ->
compare reads from the folder listing and no change can quietly tie a low stage to a high one.

Imports are read with ``ast`` from the source (lazy imports inside functions count too: they are
dependencies all the same); imports under ``if TYPE_CHECKING:`` are annotations only and do not.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import harness

PACKAGE = Path(harness.__file__).parent

#: The stages from the bottom up. A module may import its own stage and the stages listed before it.
LAYERS = [
    ("errors", "paths", "environment", "thresholds"),
    ("suite",),
    ("cells",),
    ("data",),
    ("backends",),
    ("progress",),
    ("algorithms",),
    ("store",),
    ("checkpoints",),
    ("compare",),
    ("report",),
    ("tasks",),
    ("executors",),
    ("runner", "study_runner"),
    ("container",),
    ("commands",),
    ("cli", "__main__"),
]
RANK = {stage: rank for rank, stages in enumerate(LAYERS) for stage in stages}


def stage_of(module: str) -> str:
    """``harness.suite.load`` -> ``suite``; ``harness.cli`` -> ``cli``; names re-exported by ``harness`` itself -> ``errors``."""
    parts = module.split(".")
    if len(parts) < 2 or not ((PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file()):
        return "errors"  # ``from harness import __version__``: the package root, below everything
    return parts[1]


def runtime_imports(path: Path) -> set[str]:
    """The ``harness`` modules a source file imports at run time (anywhere in it)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(node) for branch in ast.walk(tree)
                   if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
                   for node in ast.walk(branch)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("harness.")}


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = stage_of(".".join(("harness", *path.relative_to(PACKAGE).with_suffix("").parts)))
        for imported in sorted(runtime_imports(path)):
            target = stage_of(imported)
            if target != source and RANK[target] > RANK[source]:
                problems.append(f"{path.relative_to(PACKAGE.parent)} ({source}) imports {imported} ({target})")
    return problems


def test_every_module_belongs_to_a_listed_stage():
    stages = {stage_of(".".join(("harness", *p.relative_to(PACKAGE).with_suffix("").parts)))
              for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE}
    assert stages - set(RANK) == set()


def test_no_stage_imports_a_stage_above_it():
    assert upward_imports() == []


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    # The same walk over a tiny fake package: a task importing a command is caught, a TYPE_CHECKING
    # import is not.
    fake = tmp_path / "harness"
    (fake / "tasks").mkdir(parents=True)
    (fake / "commands").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "tasks" / "bad.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                           "    from harness.runner import x\n"
                                           "def f():\n    from harness.commands.run import reports_dir\n")
    (fake / "commands" / "run.py").write_text("")
    (fake / "runner.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert upward_imports() == ["harness/tasks/bad.py (tasks) imports harness.commands.run (commands)",
                                "harness/tasks/bad.py (tasks) imports harness.commands.run.reports_dir (commands)"]
