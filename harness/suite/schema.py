"""The suite schema: what a suite file may say, validated into a :class:`Suite` (see :mod:`.load`).

A suite file names its task, dataset, training settings, models, the matrix to run and its
profiles. Every field has a description; unknown keys are rejected.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, get_args

from pydantic import Field, PositiveInt, ValidationInfo, field_validator, model_validator

from harness.errors import UserError
from harness.suite.models import StrictModel
from harness.suite.regression_settings import RegressionSettings
from harness.suite.spec import ModelSpec
from harness.suite.evidence import ChanceRow, Note
from harness.suite.study import Claim, Tolerance

#: The frameworks a suite may name; harness.backends registers one backend for each (tests/test_suite.py checks it).
BackendName = Literal["torch", "tensorflow"]
BACKEND_NAMES: tuple[str, ...] = get_args(BackendName)
#: Training precisions: float32, or mixed precision with bfloat16 or float16 compute (docs/backends.md, "Precision").
Precision = Literal["fp32", "bf16", "fp16"]
#: Images in each part of each dataset (the IDX headers say the same; tests/test_runner.py checks it).
DATASET_SIZES = {"mnist": {"train": 60_000, "test": 10_000}, "fashion_mnist": {"train": 60_000, "test": 10_000}}


#: The largest learning rate a suite may set: far beyond it every optimizer here diverges at the first
#: step (and 1e308 overflows), so a larger one is a typo caught as the suite loads.
MAX_LEARNING_RATE = 100.0


class DataSettings(StrictModel):
    """Which dataset, and how much of it."""

    dataset: Literal["mnist", "fashion_mnist"] = Field("mnist", description="Dataset name.")
    validation_split: float = Field(0.1, ge=0.0, lt=1.0, description="Share of the training pool held out.")
    split_seed: int = Field(0, description="Seed of the train/validation split (fixed across cells).")
    train_samples: PositiveInt | None = Field(None, description="Training pool size; None = all 60,000.")
    test_samples: PositiveInt | None = Field(None, description="Test images used; None = all 10,000.")

    @field_validator("train_samples", "test_samples")
    @classmethod
    def _within_dataset(cls, count: int | None, info: ValidationInfo) -> int | None:
        # Known without reading the files, so a count the dataset cannot give fails as the suite loads,
        # not in every cell after a run has been created.
        dataset = info.data.get("dataset")
        part = "train" if info.field_name == "train_samples" else "test"
        available = DATASET_SIZES.get(dataset, {}).get(part)
        if count is not None and available is not None and count > available:
            raise ValueError(f"{count:,} is more than {dataset} has; allowed: 1 to {available:,} ({part} images)")
        return count

    @model_validator(mode="after")
    def _both_parts_hold_samples(self) -> "DataSettings":
        # The split harness.data.split makes: the last round(share x pool) samples of the pool are held out.
        pool = self.train_samples or DATASET_SIZES[self.dataset]["train"]
        held_out = round(self.validation_split * pool)
        if held_out >= pool:
            raise ValueError(f"validation_split {self.validation_split} holds out all {pool:,} training samples, "
                             "leaving none to train on; lower it or raise data.train_samples")
        if self.validation_split > 0 and held_out == 0:
            raise ValueError(f"validation_split {self.validation_split} holds out no sample of {pool:,}; raise it "
                             "(or set 0 for no validation set)")
        return self


class TrainSettings(StrictModel):
    """How every model of the suite is trained."""

    epochs: PositiveInt = Field(10, description="Passes over the training set.")
    batch_size: PositiveInt = Field(50, description="Samples per optimizer step.")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="Optimizer.")
    learning_rate: float = Field(1e-3, gt=0.0, le=MAX_LEARNING_RATE, description="Optimizer learning rate.")
    loss: Literal["cross_entropy"] = Field("cross_entropy", description="Training loss.")
    precision: Precision = Field("fp32", description="fp32, or mixed precision: bf16 / fp16 compute, float32 "
                                 "weights and loss (PyTorch autocast, fp16 with a gradient scaler; Keras "
                                 "mixed policy, output layer float32). The record's precision column says which ran.")
    fast: bool = Field(True, description="The fast training step (fused optimizer, channels-last convolutions, "
                       "CUDA graphs; Keras: 32 steps per call, XLA on GPUs): same mathematics, float rounding "
                       "may differ. false = the framework's defaults. The record's train_path says which ran.")
    target_accuracy: float | None = Field(None, gt=0.0, le=100.0, description="Validation accuracy (percent) "
                                          "whose first reaching is timed (seconds_to_target); None = not timed.")
    deterministic: bool = Field(False, description="Deterministic kernels, so that a GPU run repeats bit for bit "
                                "as a CPU run does: PyTorch's deterministic algorithms with a fixed cuBLAS "
                                "workspace, TensorFlow's op determinism. Slower on GPUs; CUDA graphs stay. The "
                                "record's deterministic column says which ran.")


class Matrix(StrictModel):
    """The cells to run: every model on every backend x device x seed."""

    backends: list[BackendName] = Field(["torch"], min_length=1)
    devices: list[Literal["cpu", "cuda", "auto"]] = Field(["cpu"], min_length=1)
    seeds: list[int] = Field([0], min_length=1)


class Reference(StrictModel):
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


class Suite(StrictModel):
    """A validated suite, with the profile and overrides already applied."""

    name: str = Field(description="File name without .toml; set by the loader.")
    title: str
    task: str = Field(description="The task that runs the cells; the task registry (harness.tasks) checks the name.")
    mirrors: str = Field("", description="The report table or figure this suite mirrors.")
    description: str = ""
    data: DataSettings = Field(default_factory=DataSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    matrix: Matrix = Field(default_factory=Matrix)
    models: list[ModelEntry] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict, description="Task-specific settings.")
    regression: RegressionSettings = Field(default_factory=RegressionSettings,
                                           description="Thresholds and noise settings of harness compare/nightly.")
    claims: list[Claim] = Field(default_factory=list, description="The report's claims about this suite's "
                                "results, each with a machine-checkable form (harness.study.claims).")
    tolerances: dict[str, Tolerance] = Field(default_factory=dict, description="Per metric (accuracy, params, "
                                             "seconds, ...): how far ours may lie from the report's and count as "
                                             "reproduced; unlisted metrics take harness.suite.study.DEFAULT_TOLERANCES.")
    notes: list[Note] = Field(default_factory=list, description="What the report does not state and this suite "
                              "assumed, how the report counts, evidence from elsewhere: shown beside the numbers.")
    chance: list[ChanceRow] = Field(default_factory=list, description="Quantities the report's own setting leaves "
                                    "untrained: judged against chance, not the tolerance.")
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

    def run_settings(self) -> dict[str, Any]:
        """Every setting that decides what is run, matrix included: a run's identity (see
        :func:`settings_difference`). How results are described or judged is left out."""
        return run_settings(self.resolved())

    @property
    def config_hash(self) -> str:
        """The training settings, matrix left out: runs with the same hash measure the same thing cell
        by cell, so the comparison holds them comparable, and their run ids share an ending. Which run
        a command resumes is decided by the whole of :meth:`run_settings`, matrix included."""
        settings = self.run_settings()
        settings.pop("matrix")  # a run of more or fewer cells of these settings measures the same thing per cell
        return settings_hash(settings)

    @property
    def identity(self) -> str:
        """A hash of :meth:`run_settings`, matrix included (a study's identity is made of its members')."""
        return settings_hash(self.run_settings())


#: Parts of a resolved suite that describe or judge its results without changing what is run.
NOT_RUN_SETTINGS = ("description", "regression", "claims", "tolerances", "notes", "chance", "profiles")


#: Training settings added after runs and baselines were stored, with the value those runs had: at it,
#: a setting is left out of a run's settings, so their hashes and identities stay the ones stored.
LATER_TRAIN_SETTINGS = {"precision": "fp32", "deterministic": False}


def run_settings(resolved: dict[str, Any]) -> dict[str, Any]:
    """A resolved suite (as stored with a run) less what does not change what is run, and less the
    :data:`LATER_TRAIN_SETTINGS` at their former value."""
    settings = {key: value for key, value in resolved.items() if key not in NOT_RUN_SETTINGS}
    if isinstance(settings.get("train"), dict):
        settings["train"] = {key: value for key, value in settings["train"].items()
                             if LATER_TRAIN_SETTINGS.get(key, object()) != value}
    return settings


def settings_hash(settings: dict[str, Any]) -> str:
    """Twelve hex digits identifying ``settings`` (plain JSON data)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def settings_difference(stored: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The first setting that tells a stored run's resolved suite from the command's, as
    ``matrix.seeds: [0] in that run, [1] now``; None when every setting that decides what is run is equal."""
    differences = _differences(run_settings(stored), run_settings(current), "")
    return differences[0] if differences else None


def _differences(stored: Any, current: Any, where: str) -> list[str]:
    if isinstance(stored, dict) and isinstance(current, dict):
        found: list[str] = []
        for key in sorted(set(stored) | set(current), key=str):
            found += _differences(stored.get(key), current.get(key), f"{where}.{key}" if where else str(key))
        return found
    if stored == current:
        return []
    return [f"{where or 'settings'}: {_short(stored)} in that run, {_short(current)} now"]


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."
