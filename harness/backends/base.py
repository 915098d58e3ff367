"""The interface a framework backend implements.

A backend builds a :class:`~harness.spec.ModelSpec`, trains it with the suite's settings on in-memory
arrays, and predicts. Data arrives as NumPy arrays, images channels-last ``(N, H, W, C)`` float32 in
[0, 1] and labels int64; a backend moves them to its device once, before the first batch.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from harness.errors import UserError

if TYPE_CHECKING:
    from harness.data import Splits
    from harness.spec import ModelSpec
    from harness.suite import TrainSettings


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch of training, as Keras' History reports it (accuracies as fractions)."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FitResult:
    """The per-epoch history and the wall-clock seconds of the whole training loop."""

    history: list[EpochMetrics]
    seconds: float


class TrainObserver(Protocol):
    """Receives training progress (the run's progress bars); must be cheap, it is called per batch."""

    def start_epoch(self, epoch: int, batches: int) -> None: ...

    def advance(self, batches: int = 1) -> None: ...

    def end_epoch(self, metrics: EpochMetrics) -> None: ...


class SilentObserver:
    """An observer that ignores everything (tests, benchmarks)."""

    def start_epoch(self, epoch: int, batches: int) -> None:
        pass

    def advance(self, batches: int = 1) -> None:
        pass

    def end_epoch(self, metrics: EpochMetrics) -> None:
        pass


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or infinite loss; the cell fails with this message."""


class Backend(ABC):
    """A framework behind the harness. Subclasses import their framework inside their methods' module."""

    name: ClassVar[str]
    #: The module whose presence means the framework is installed.
    framework_module: ClassVar[str]
    #: The package extra that installs it: ``pip install 'harness[EXTRA]'``.
    extra: ClassVar[str]

    @classmethod
    def check_installed(cls) -> None:
        """A UserError naming the extra to install when the framework is missing."""
        if importlib.util.find_spec(cls.framework_module) is None:
            raise UserError(
                f"backend {cls.name!r} needs {cls.framework_module}, which is not installed: "
                f"pip install 'harness[{cls.extra}]'"
            )

    @abstractmethod
    def resolve_device(self, device: str) -> str:
        """'cpu' or 'cuda' for a requested 'cpu', 'cuda' or 'auto'; UserError if CUDA is asked for and absent."""

    @abstractmethod
    def build(self, spec: "ModelSpec", *, seed: int, device: str) -> Any:
        """The model for ``spec`` on ``device``, initialised from ``seed`` (Glorot-uniform kernels, zero biases)."""

    @abstractmethod
    def count_params(self, model: Any) -> int:
        """Trainable parameters of a built model."""

    @abstractmethod
    def fit(
        self,
        model: Any,
        splits: "Splits",
        train: "TrainSettings",
        *,
        epochs: int,
        seed: int,
        device: str,
        observer: TrainObserver,
    ) -> FitResult:
        """Train in place; validation metrics at the end of each epoch, as Keras' fit does."""

    @abstractmethod
    def predict(self, model: Any, images: np.ndarray, *, device: str, batch_size: int = 1000) -> np.ndarray:
        """Predicted class per image (int64)."""

    @abstractmethod
    def save(self, model: Any, folder: Path) -> Path:
        """Write the weights in the framework's safe format into ``folder``; return the file."""

    @abstractmethod
    def load(self, spec: "ModelSpec", path: Path, *, device: str) -> Any:
        """A model for ``spec`` with the weights from ``path``; UserError if they do not fit the spec."""

    @abstractmethod
    def environment(self, device: str) -> dict[str, Any]:
        """Framework version, threads, and the device's name (GPU model and driver where present)."""
