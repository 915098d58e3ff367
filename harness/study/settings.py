"""Like against like: the settings of a member run that differ from the report's.

A number of the report is judged only when every setting that determines it equals the report's: the
data sizes, epochs, batch size, optimiser, model, precision and the task's own options. The report's
settings are the suite's ``full`` profile (every shipped suite documents it as "the report's settings").
What only picks *which* numbers a run computes (seeds, the matrix, a task's selecting options such as
the perceptron's pairs or MTL's lambdas) or how they are timed and judged does not count.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.errors import UserError
from harness.suite.schema import DATASET_SIZES, Suite

#: The settings that never determine a number of the report: identity, judging, timing, the matrix
#: (seeds, backends, devices), the split seed (a seed like any other), and the training path options
#: that keep the mathematics (train.fast, train.deterministic).
IGNORED = {"name", "title", "mirrors", "description", "matrix", "regression", "claims", "tolerances", "notes",
           "chance", "repeats", "profiles", "profile", "data.split_seed", "train.fast", "train.deterministic",
           "train.target_accuracy"}
#: The report trains in full precision; a run at another (train.precision, where the harness has it) differs.
REPORT_PRECISION = "fp32"
NAMES = {"train.batch_size": "batch size", "train.optimizer": "optimiser", "train.learning_rate": "learning rate",
         "train.loss": "loss", "data.dataset": "dataset", "data.validation_split": "validation split",
         "train.precision": "precision"}


def report_suite(name: str) -> Suite | None:
    """The member suite at the report's settings (its ``full`` profile), or None when it cannot be loaded."""
    from harness.tasks import load_suite

    try:
        return load_suite(name, "full")
    except UserError:
        return None


def differing(ours: Suite, report: Suite | None, selecting: Iterable[str] = ()) -> list[str]:
    """The settings of ``ours`` that differ from the report's, each in words ("1 of 10 epochs");
    [] when every setting that determines a number is the report's."""
    if report is None:
        return ["the report's settings are unknown (its suite file cannot be loaded)"]
    ignored = IGNORED | {f"options.{name}" for name in selecting}
    mine, theirs = _flat(_sized(ours)), _flat(_sized(report))
    out = []
    if mine.get("train.precision", REPORT_PRECISION) != REPORT_PRECISION and "train.precision" not in theirs:
        out.append(f"precision {mine['train.precision']} (the report: {REPORT_PRECISION})")
    models_differ: list[str] = []
    for path in sorted(set(mine) | set(theirs), key=_order):
        if any(path == name or path.startswith(f"{name}.") for name in ignored):
            continue
        a, b = mine.get(path), theirs.get(path)
        if a == b:
            continue
        if path.startswith("models."):
            index = int(path.split(".")[1])
            model = (ours.models[index].name if index < len(ours.models) else f"model {index + 1}")
            if path.split(".")[2:] == ["epochs"] and a is not None and b is not None:
                out.append(f"{model}: {a} of {b} epochs")
            elif not path.split(".")[2:3] == ["reference"] and model not in models_differ:
                models_differ.append(model)
            continue
        out.append(_phrase(path, a, b))
    out += [f"{model}: not the report's model" for model in models_differ]
    return out


def _phrase(path: str, ours: Any, report: Any) -> str:
    if path == "data.train_samples":
        return f"{ours:,} of {report:,} training images"
    if path == "data.test_samples":
        return f"{ours:,} of {report:,} test images"
    if path == "train.epochs":
        return f"{ours} of {report} epochs"
    return f"{NAMES.get(path, path.removeprefix('options.'))} {_text(ours)} (the report: {_text(report)})"


def _text(value: Any) -> str:
    return "–" if value is None else f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _sized(suite: Suite) -> dict[str, Any]:
    """The resolved settings with the data sizes spelled out (None = the whole set)."""
    settings = suite.resolved()
    sizes = DATASET_SIZES.get(suite.data.dataset, {})
    for key, part in (("train_samples", "train"), ("test_samples", "test")):
        if settings["data"].get(key) is None and part in sizes:
            settings["data"][key] = sizes[part]
    return settings


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted paths (lists of settings by index: models.1.epochs); leaf lists stay whole."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    if prefix.startswith("models.") and prefix.count(".") == 1 and isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out.update(_flat(item, f"{prefix}{index}."))
        return out
    return {prefix.rstrip("."): value}


def _order(path: str) -> tuple[int, str]:
    # The sizes and epochs first (what a reader looks for), then data, training, models and options.
    first = ("data.train_samples", "data.test_samples", "train.epochs")
    if path in first:
        return first.index(path) - len(first), path
    ranks = {"data": 0, "train": 1, "models": 2, "options": 3}
    return ranks.get(path.split(".")[0], 4), path
