"""Suites: the declarative TOML files in ``suites/``, validated into a :class:`Suite`.

A suite file names its task, dataset, training settings, models, the matrix to run and its
profiles. Loading applies, in order: the file, the chosen profile's overrides, then the command
line's overrides, and validates the result as a whole, so that a bad value is reported the same way
wherever it came from. Every problem is a :class:`~harness.errors.UserError` with one line naming the
field and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.compare.regression import RegressionSettings
from harness.errors import UserError
from harness.suite.overrides import Override, apply_overrides
from harness.suite.spec import ModelSpec

TASKS = ("classify", "pca", "perceptron", "search", "visualize", "mtl")
BACKEND_NAMES = ("torch", "tensorflow")
DEVICE_NAMES = ("cpu", "cuda", "auto")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSettings(_Strict):
    """Which dataset, and how much of it."""

    dataset: Literal["mnist", "fashion_mnist"] = Field("mnist", description="Dataset name.")
    validation_split: float = Field(0.1, ge=0.0, lt=1.0, description="Share of the training pool held out.")
    split_seed: int = Field(0, description="Seed of the train/validation split (fixed across cells).")
    train_samples: PositiveInt | None = Field(None, description="Training pool size; None = all 60,000.")
    test_samples: PositiveInt | None = Field(None, description="Test images used; None = all 10,000.")


class TrainSettings(_Strict):
    """How every model of the suite is trained."""

    epochs: PositiveInt = Field(10, description="Passes over the training set.")
    batch_size: PositiveInt = Field(50, description="Samples per optimizer step.")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="Optimizer.")
    learning_rate: float = Field(1e-3, gt=0.0, description="Optimizer learning rate.")
    loss: Literal["cross_entropy"] = Field("cross_entropy", description="Training loss.")
    fast: bool = Field(True, description="The fast training step (fused optimizer, channels-last convolutions, "
                       "CUDA graphs; Keras: 32 steps per call, XLA on GPUs): same mathematics, float rounding "
                       "may differ. false = the framework's defaults. The record's train_path says which ran.")
    target_accuracy: float | None = Field(None, gt=0.0, le=100.0, description="Validation accuracy (percent) "
                                          "whose first reaching is timed (seconds_to_target); None = not timed.")


class Matrix(_Strict):
    """The cells to run: every model on every backend x device x seed."""

    backends: list[Literal["torch", "tensorflow"]] = Field(["torch"], min_length=1)
    devices: list[Literal["cpu", "cuda", "auto"]] = Field(["cpu"], min_length=1)
    seeds: list[int] = Field([0], min_length=1)


class Reference(_Strict):
    """The report's numbers for one model (None where the report gives none)."""

    params: int | None = None
    test_accuracy: float | None = Field(None, description="Test accuracy, percent.")
    train_accuracy: float | None = Field(None, description="Train accuracy, percent.")
    cpu_seconds: float | None = Field(None, description="Training time on the report's CPU, seconds.")
    gpu_seconds: float | None = Field(None, description="Training time on the report's GPU, seconds.")


class ModelEntry(ModelSpec):
    """A model of the suite: its spec, the report's numbers, and per-model training changes."""

    reference: Reference = Field(default_factory=Reference)
    epochs: PositiveInt | None = Field(None, description="Epochs for this model; None = the suite's.")


class Suite(_Strict):
    """A validated suite, with the profile and overrides already applied."""

    name: str = Field(description="File name without .toml; set by the loader.")
    title: str
    task: Literal["classify", "pca", "perceptron", "search", "visualize", "mtl"]
    mirrors: str = Field("", description="The report table or figure this suite mirrors.")
    description: str = ""
    data: DataSettings = Field(default_factory=DataSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    matrix: Matrix = Field(default_factory=Matrix)
    models: list[ModelEntry] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict, description="Task-specific settings.")
    regression: RegressionSettings = Field(default_factory=RegressionSettings,
                                           description="Thresholds and noise settings of harness compare/nightly.")
    repeats: PositiveInt = Field(1, description="Times each cell's training is timed; >1 gives compare a spread.")
    profiles: dict[str, dict[str, Any]] = Field(description="Named override sets; 'smoke' and 'full' required.")
    profile: str = Field("full", description="The profile applied; set by the loader.")

    @field_validator("profiles")
    @classmethod
    def _smoke_and_full(cls, profiles: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        missing = [name for name in ("smoke", "full") if name not in profiles]
        if missing:
            raise ValueError(f"profiles {', '.join(missing)} missing: every suite needs 'smoke' and 'full'")
        return profiles

    @model_validator(mode="after")
    def _unique_model_names(self) -> "Suite":
        names = [model.name for model in self.models]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"model names must be unique; repeated: {', '.join(duplicated)}")
        return self

    def model(self, name: str) -> ModelEntry:
        """The model called ``name``."""
        for model in self.models:
            if model.name == name:
                return model
        raise UserError(f"suite {self.name!r} has no model {name!r}; models: {', '.join(m.name for m in self.models)}")

    def resolved(self) -> dict[str, Any]:
        """The whole resolved suite as plain JSON data, stored unchanged with every result."""
        return self.model_dump(mode="json")

    @property
    def config_hash(self) -> str:
        """Identifies these settings: a run resumes only into a run with the same hash."""
        settings = self.resolved()
        settings.pop("description", None)
        settings.pop("regression", None)  # how a run is judged is not how it is run
        settings.pop("matrix")  # a run may cover more or fewer cells of the same settings
        blob = json.dumps(settings, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def suites_dir() -> Path:
    """Where suite files live: ``$HARNESS_SUITES``, else ``./suites``, else the one beside the package."""
    candidates = [os.environ.get("HARNESS_SUITES"), "suites", Path(__file__).resolve().parent.parent / "suites"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise UserError("no suites folder found: set HARNESS_SUITES or run from the repository root")


def suite_names() -> list[str]:
    """Names of the suites on disk, sorted."""
    return sorted(path.stem for path in suites_dir().glob("*.toml"))


def read_suite_file(path: Path) -> dict[str, Any]:
    """The raw TOML of a suite file; a syntax error is a one-line UserError."""
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"suite file {path}: invalid TOML: {error}") from None
    except OSError as error:
        raise UserError(f"suite file {path}: cannot read: {error.strerror}") from None


def load_suite(
    name_or_path: str, profile: str = "full", overrides: list[Override] | tuple[Override, ...] = ()
) -> Suite:
    """Read, override and validate a suite; ``name_or_path`` is a suite name or a .toml path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = suites_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            raise UserError(f"unknown suite {name_or_path!r}; suites: {', '.join(suite_names())}")
    raw = read_suite_file(path)
    raw["name"] = path.stem
    where = f"suite {path.stem}"
    base = validate_suite(raw, where)  # the file alone must be valid before anything is applied to it
    if profile not in base.profiles:
        raise UserError(f"{where}: unknown profile {profile!r}; profiles: {', '.join(base.profiles)}")
    for name, settings in base.profiles.items():
        # Every profile is checked at load time, so a bad one never waits for the day someone picks it.
        profiled = apply_overrides(raw, Override.from_mapping(settings, f"profile {name}"), where)
        profiled["profile"] = name
        validated = validate_suite(profiled, f"{where} (profile {name})")
        if name == profile:
            chosen, suite = profiled, validated
    if not overrides:
        return suite  # already validated above: no need to do it twice
    return validate_suite(apply_overrides(chosen, overrides, where), where)


def validate_suite(raw: dict[str, Any], where: str) -> Suite:
    """Validate raw suite data; the first error becomes a one-line UserError naming the field."""
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as error:
        raise UserError(f"{where}: {describe_validation_error(error, raw)}") from None
    from harness.tasks import task_for  # tasks check their own options

    try:
        task_for(suite.task).Options.model_validate(suite.options)
    except ValidationError as error:
        raise UserError(f"{where}: {describe_validation_error(error, suite.options, prefix='options')}") from None
    return suite


def describe_validation_error(error: ValidationError, raw: Any, prefix: str = "") -> str:
    """One line for pydantic's first error: the dotted field, the problem, what is allowed."""
    first = error.errors()[0]
    location = [str(part) for part in first["loc"]]
    # Discriminated unions add the tag to the path ('layers.2.conv2d.kernel'); models are named instead.
    location = _name_models(location, raw)
    field = ".".join(([prefix] if prefix else []) + location) or "suite"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(error, first["loc"])
        return f"unknown key {field!r}" + (f"; allowed here: {allowed}" if allowed else "")
    if first["type"] == "union_tag_invalid":
        return f"{field}: unknown layer type {first['input'].get('type')!r}; allowed: {', '.join(_layer_types())}"
    if first["type"] == "missing":
        return f"{field}: required field missing"
    if first["type"] == "value_error":
        message = str(first["ctx"]["error"])
    return f"{field}: {message} (got {first.get('input')!r})" if first["type"] != "value_error" else f"{field}: {message}"


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


def _allowed_keys(error: ValidationError, loc: tuple) -> str:
    model = _model_at(error.title, loc[:-1])
    return ", ".join(model.model_fields) if model else ""


def _model_at(title: str, loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that owns the field at ``loc`` (for the list of allowed keys)."""
    from harness.suite import spec

    roots: dict[str, type[BaseModel]] = {"Suite": Suite}
    model: type[BaseModel] | None = roots.get(title)
    if model is None:
        from harness.tasks import options_model_named

        model = options_model_named(title)
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
