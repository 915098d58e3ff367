"""The package's layout: each folder (or top-level module) is one stage of the flow, and imports only
the stages below it, so the flow suite -> cells -> executor -> task -> backend -> store -> render ->
compare reads from the folder listing and no change can quietly tie a low stage to a high one.

Two more rules keep the core apart from its content: no module outside ``harness/paper`` imports the
paper's content package (the core finds it through an entry point), and no algorithm imports a
framework backend (algorithms are plain computations the tasks hand data to).

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
    ("errors", "paths", "environment", "thresholds", "threads"),
    ("suite",),
    ("cells",),
    ("data",),
    ("backends",),
    ("progress",),
    ("algorithms",),
    ("store",),
    ("checkpoints",),
    ("calibration",),
    ("compare",),
    ("render",),
    ("history",),
    ("tasks",),
    ("estimate",),
    ("paper",),
    ("executors",),
    ("runner",),
    ("study",),
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


def module_name(path: Path) -> str:
    return ".".join(("harness", *path.relative_to(PACKAGE).with_suffix("").parts))


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = stage_of(module_name(path))
        for imported in sorted(runtime_imports(path)):
            target = stage_of(imported)
            if target != source and RANK[target] > RANK[source]:
                problems.append(f"{path.relative_to(PACKAGE.parent)} ({source}) imports {imported} ({target})")
    return problems


#: The content packages the core must not import (they register themselves through entry points).
CONTENT = ("harness.paper",)


def core_imports_of_content() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        if source.startswith(CONTENT):
            continue
        problems += [f"{path.relative_to(PACKAGE.parent)} imports {imported} (content)"
                     for imported in sorted(runtime_imports(path)) if imported.startswith(CONTENT)]
    return problems


def algorithm_imports_of_backends() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "algorithms" not in path.relative_to(PACKAGE).parts:
            continue
        problems += [f"{path.relative_to(PACKAGE.parent)} imports {imported} (a backend)"
                     for imported in sorted(runtime_imports(path)) if stage_of(imported) == "backends"]
    return problems


def test_every_module_belongs_to_a_listed_stage():
    stages = {stage_of(".".join(("harness", *p.relative_to(PACKAGE).with_suffix("").parts)))
              for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE}
    assert stages - set(RANK) == set()


def test_no_stage_imports_a_stage_above_it():
    assert upward_imports() == []


def test_the_core_never_imports_the_content_package():
    assert core_imports_of_content() == []


def test_no_algorithm_imports_a_backend():
    assert algorithm_imports_of_backends() == []


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


def fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "harness"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_checker_sees_the_core_importing_content(tmp_path, monkeypatch):
    # A runner reaching for a paper task by import is caught, even inside a function; the paper
    # importing the core, and a core module naming the content only in a string, are not.
    fake = fake_package(tmp_path, {
        "runner.py": "def f():\n    from harness.paper.tasks import mtl\nNAME = 'harness.paper'\n",
        "paper/tasks/mtl.py": "from harness.tasks.base import Task\n",
        "tasks/base.py": ""})
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert core_imports_of_content() == ["harness/runner.py imports harness.paper.tasks (content)",
                                         "harness/runner.py imports harness.paper.tasks.mtl (content)"]


def test_the_checker_sees_an_algorithm_importing_a_backend(tmp_path, monkeypatch):
    # Core and content algorithms alike; the leaf thread helpers are allowed.
    fake = fake_package(tmp_path, {
        "paper/algorithms/perceptron.py": "from harness.backends.torch.train import synchronize\n"
                                          "from harness.threads import blas_threads\n",
        "algorithms/pca.py": "import harness.backends.base\n",
        "backends/base.py": "", "threads.py": ""})
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert algorithm_imports_of_backends() == [
        "harness/algorithms/pca.py imports harness.backends.base (a backend)",
        "harness/paper/algorithms/perceptron.py imports harness.backends.torch.train (a backend)",
        "harness/paper/algorithms/perceptron.py imports harness.backends.torch.train.synchronize (a backend)"]
