"""What training returns: per-epoch metrics and whole fits, as plain values (a leaf module).

The progress display and the tasks read these; they import nothing from the backends' frameworks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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
    #: Which training step ran: ``"plain"`` (the framework's defaults) or ``"fast: ..."`` naming what
    #: the fast path used (see ``TrainSettings.fast``).
    path: str = "plain"


@dataclass(frozen=True)
class MultiTaskEpoch:
    """One epoch of multi-task training: the weighted objective and each head's own metrics."""

    epoch: int
    train_loss: float
    val_loss: float | None
    heads: tuple[EpochMetrics, ...]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MultiTaskFit:
    """The per-epoch history of a multi-task fit and the wall-clock seconds of the training loop."""

    history: list[MultiTaskEpoch]
    seconds: float
    path: str = "plain"

    def single(self) -> FitResult:
        """The fit of a one-head model as a single-task :class:`FitResult` (single-task training is
        the one-head case of multi-task training)."""
        return FitResult([epoch.heads[0] for epoch in self.history], self.seconds, self.path)


def seconds_to_target(history: list[EpochMetrics], target: float | None) -> float | None:
    """Training seconds until validation accuracy (a fraction) first reached ``target`` (percent), as
    AlgoPerf's time-to-result: the epochs' clocks summed up to the end of that epoch. None when no
    target is set, or no epoch reached it."""
    if target is None:
        return None
    elapsed = 0.0
    for metrics in history:
        elapsed += metrics.seconds
        if metrics.val_accuracy is not None and 100.0 * metrics.val_accuracy >= target:
            return elapsed
    return None
