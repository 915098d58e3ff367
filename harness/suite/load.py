"""Loading suites: the TOML file, then the chosen profile's overrides, then the command line's.

The result is validated as a whole, so that a bad value is reported the same way wherever it came
from. Every problem is a :class:`~harness.errors.UserError` with one line naming the field and what
is allowed. The suite's task options are checked by the task registry (``harness.tasks.load_suite``),
which hands its check in here: the suite stage knows nothing of tasks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.errors import UserError, echo
from harness.suite.overrides import Override, apply_overrides
from harness.suite.schema import Suite
from harness.suite.toml_file import read_toml

#: Checks a validated suite further (the task registry checks the task name and options); raises UserError.
SuiteCheck = Callable[[Suite, str], None]


def suites_dir() -> Path:
    """Where suite files live: ``$HARNESS_SUITES``, else ``./suites``, else the one beside the package."""
    candidates = [os.environ.get("HARNESS_SUITES"), "suites", Path(__file__).resolve().parents[2] / "suites"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise UserError("no suites folder found: set HARNESS_SUITES or run from the repository root")


def suite_names() -> list[str]:
    """Names of the suites on disk, sorted (study files, which name suites, are not suites)."""
    from harness.suite.study import is_study_file

    return sorted(path.stem for path in suites_dir().glob("*.toml") if not is_study_file(path))


def load_suite(
    name_or_path: str, profile: str = "full", overrides: list[Override] | tuple[Override, ...] = (),
    check: SuiteCheck | None = None,
) -> Suite:
    """Read, override and validate a suite; ``name_or_path`` is a suite name or a .toml path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = suites_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            raise UserError(f"unknown suite {echo(name_or_path)}; suites: {', '.join(suite_names())}")
    raw = read_toml(path, "suite")  # a file that is not UTF-8 or not TOML is one line
    if "members" in raw:
        raise UserError(f"{path.stem} is a study, not a suite: run it with harness run suite={path.stem}")
    raw["name"] = path.stem
    where = f"suite {path.stem}"
    base = validate_suite(raw, where, check)  # the file alone must be valid before anything is applied to it
    if profile not in base.profiles:
        raise UserError(f"{where}: unknown profile {echo(profile)}; profiles: {', '.join(base.profiles)}")
    for name, settings in base.profiles.items():
        # Every profile is checked at load time, so a bad one never waits for the day someone picks it.
        profiled = apply_overrides(raw, Override.from_mapping(settings, f"profile {name}"), where)
        profiled["profile"] = name
        validated = validate_suite(profiled, f"{where} (profile {name})", check)
        if name == profile:
            chosen, suite = profiled, validated
    if not overrides:
        return suite  # already validated above: no need to do it twice
    return validate_suite(apply_overrides(chosen, overrides, where), where, check)


def validate_suite(raw: dict[str, Any], where: str, check: SuiteCheck | None = None) -> Suite:
    """Validate raw suite data; the first error becomes a one-line UserError naming the field."""
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as error:
        raise UserError(f"{where}: {describe_validation_error(error, raw)}") from None
    if check is not None:
        check(suite, where)
    return suite


def describe_validation_error(error: ValidationError, raw: Any, prefix: str = "",
                              root: type[BaseModel] = Suite) -> str:
    """One line for pydantic's first error: the dotted field, the problem, what is allowed.

    ``root`` is the model validated (the suite, or a task's options model), for the list of allowed keys.
    """
    first = error.errors()[0]
    location = [str(part) for part in first["loc"]]
    # Discriminated unions add the tag to the path ('layers.2.conv2d.kernel'); models are named instead.
    location = _name_models(location, raw)
    field = ".".join(([prefix] if prefix else []) + location) or "suite"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(root, first["loc"])
        return f"unknown key {echo(field)}" + (f"; allowed here: {allowed}" if allowed else "")
    if first["type"] == "union_tag_invalid":
        return f"{field}: unknown layer type {first['input'].get('type')!r}; allowed: {', '.join(_layer_types())}"
    if first["type"] == "missing":
        return f"{field}: required field missing"
    if first["type"] == "value_error":
        message = str(first["ctx"]["error"])
    return f"{field}: {message} (got {echo(first.get('input'))})" if first["type"] != "value_error" else f"{field}: {message}"


def _name_models(location: list[str], raw: Any) -> list[str]:
    if len(location) >= 2 and location[0] == "models" and location[1].isdigit():
        try:
            name = raw["models"][int(location[1])]["name"]
            location = [f"models[{name!r}]"] + location[2:]
        except (KeyError, IndexError, TypeError):
            pass
    return [part for part in location if part not in _layer_types()]


def _layer_types() -> tuple[str, ...]:
    from harness.suite.spec import LAYER_TYPES

    return LAYER_TYPES


def _allowed_keys(root: type[BaseModel], loc: tuple) -> str:
    model = _model_at(root, loc[:-1])
    return ", ".join(model.model_fields) if model else ""


def _model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that owns the field at ``loc`` (for the list of allowed keys)."""
    from harness.suite import spec

    model: type[BaseModel] | None = root
    layer_models = {cls.model_fields["type"].default: cls for cls in (spec.Dense, spec.Conv2D, spec.MaxPool2D,
                                                                     spec.Flatten, spec.Dropout, spec.Activation)}
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        if part in layer_models:
            model = layer_models[part]
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _inner_model(argument)
        if found is not None:
            return found
    return None
