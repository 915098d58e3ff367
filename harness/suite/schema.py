"""The suite schema: what a suite file may say, validated into a :class:`Suite` (see :mod:`.load`).

A suite file names its task, dataset, training settings, models, the matrix to run and its
profiles. Every field has a description; unknown keys are rejected.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from harness.errors import UserError
from harness.suite.regression_settings import RegressionSettings
from harness.suite.spec import ModelSpec
from harness.suite.study import Claim, Tolerance

#: The frameworks a suite may name; harness.backends registers one backend for each (tests/test_suite.py checks it).
BackendName = Literal["torch", "tensorflow"]
BACKEND_NAMES: tuple[str, ...] = get_args(BackendName)
#: Images in each part of each dataset (the IDX headers say the same; tests/test_runner.py checks it).
DATASET_SIZES = {"mnist": {"train": 60_000, "test": 10_000}, "fashion_mnist": {"train": 60_000, "test": 10_000}}
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
    deterministic: bool = Field(False, description="Deterministic kernels, so that a GPU run repeats bit for bit "
                                "as a CPU run does: PyTorch's deterministic algorithms with a fixed cuBLAS "
                                "workspace, TensorFlow's op determinism. Slower on GPUs; CUDA graphs stay. The "
                                "record's deterministic column says which ran.")


class Matrix(_Strict):
    """The cells to run: every model on every backend x device x seed."""

    backends: list[BackendName] = Field(["torch"], min_length=1)
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
        settings.pop("claims", None)
        settings.pop("tolerances", None)
        settings.pop("matrix")  # a run may cover more or fewer cells of the same settings
        if not settings["train"]["deterministic"]:
            # Added after runs and baselines were stored: at its default the hash stays the one they have.
            del settings["train"]["deterministic"]
        blob = json.dumps(settings, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]
