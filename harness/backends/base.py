"""The interface a framework backend implements.

A backend builds a :class:`~harness.suite.spec.ModelSpec`, trains it with the suite's settings on in-memory
arrays, and predicts. Data arrives as NumPy arrays, images channels-last ``(N, H, W, C)`` float32 in
[0, 1] and labels int64; a backend moves them to its device once, before the first batch.
"""

from __future__ import annotations

import importlib.util
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from harness.backends.metrics import EpochMetrics, FitResult, MultiTaskFit
from harness.backends.precision import judge
from harness.environment import native_cpu_precisions
from harness.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from harness.data import Splits
    from harness.suite.schema import TrainSettings
    from harness.suite.spec import ModelSpec


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
        """Train in place; validation metrics at the end of each epoch, as Keras' fit does.
        ``train.fast`` picks the fast step (same mathematics); the result's ``path`` names what ran."""

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

    def native_precisions(self, device: str) -> set[str]:
        """The low precisions (bf16, fp16) ``device`` computes in hardware: on a CPU, what its flags say;
        a backend that runs on GPUs asks its framework about the GPU."""
        if device == "cpu":
            return {precision for precision, flags in native_cpu_precisions().items() if flags}
        return {"bf16", "fp16"}

    def check_precision(self, precision: str, device: str) -> str | None:
        """None, or a one-line warning to print, for training in ``precision`` on ``device`` (resolved);
        UserError where it is refused (:func:`harness.backends.precision.judge` has the rules)."""
        return judge(precision, framework=self.name, device=device, native=precision in self.native_precisions(device))

    # --- Inspection and multi-task training (report Tasks 5 and 6) -------------------------------
    # Not abstract: a backend without them still runs every classification suite; only the
    # visualize and mtl tasks call them. ``layer_index`` always counts the spec's layers from 0, and
    # the spec is passed because a framework's own list of layers need not match it one to one
    # (PyTorch keeps an activation as a module of its own, and folds an output softmax into the loss).

    def activations(self, model: Any, images: np.ndarray, layer_index: int, *, spec: "ModelSpec",
                    device: str) -> np.ndarray:
        """The output of spec layer ``layer_index`` (after its activation) for ``images``, in
        evaluation mode: channels-last ``(N, H, W, C)`` for image layers, ``(N, F)`` for flat ones, the
        shape ``spec.shapes()[layer_index + 1]`` predicts. An output softmax is applied here even where
        training folds it into the loss, so both backends return probabilities."""
        raise NotImplementedError(f"backend {self.name!r} cannot read activations")

    def ascend(self, model: Any, start_images: np.ndarray, layer_index: int, *, spec: "ModelSpec",
               filter_index: "int | Sequence[int] | None", steps: int, step_size: float,
               device: str) -> tuple[np.ndarray, np.ndarray]:
        """Gradient ascent on the input images, the model fixed (Chollet, *Deep Learning with Python*).

        The objective of each image is the mean activation of one filter (channel or unit) of layer
        ``layer_index``: ``filter_index`` gives it for all images (an int) or per image (a sequence),
        as for filter visualisation from noise. With ``filter_index=None`` it is the mean squared
        activation of the whole layer, as for deep dream. Each step adds ``step_size`` times the
        gradient divided by its L2 norm (each image's own), so the step length does not depend on
        the scale of the activations. Returns the final images (same shape as the start) and the
        objective per step, ``(steps + 1, N)``: row 0 before the first step, row ``steps`` at the end.
        """
        raise NotImplementedError(f"backend {self.name!r} cannot run gradient ascent")

    def kernel(self, model: Any, layer_index: int, *, spec: "ModelSpec") -> np.ndarray:
        """The weights of spec layer ``layer_index`` in Keras' layout: ``(kh, kw, in, out)`` for a
        convolution, ``(in, out)`` for a dense layer; ValueError for a layer without weights."""
        raise NotImplementedError(f"backend {self.name!r} cannot read kernels")

    def build_multitask(self, trunk: "ModelSpec", heads: "Sequence[Head]", *, seed: int, device: str) -> Any:
        """One network: the ``trunk`` spec (ending in a flat vector), then one dense softmax head per
        entry of ``heads`` on the trunk's output. Initialised like :meth:`build` (trunk first, then
        the heads in order)."""
        raise NotImplementedError(f"backend {self.name!r} cannot build multi-task models")

    def fit_multitask(self, model: Any, splits: "Splits", heads: "Sequence[Head]", loss_weights: "Sequence[float]",
                      train: "TrainSettings", *, epochs: int, seed: int, device: str,
                      observer: TrainObserver) -> MultiTaskFit:
        """Train in place on ``sum(weight_k * cross_entropy_k)``; head k's labels are
        ``heads[k].label_map[y]``. The observer follows the head with the largest weight."""
        raise NotImplementedError(f"backend {self.name!r} cannot train multi-task models")

    def predict_multitask(self, model: Any, images: np.ndarray, *, device: str,
                          batch_size: int = 1000) -> list[np.ndarray]:
        """Predicted class per image for each head (int64 arrays, in the order of the heads)."""
        raise NotImplementedError(f"backend {self.name!r} cannot run multi-task models")

    def multitask_loss(self, model: Any, images: np.ndarray, labels: np.ndarray, heads: "Sequence[Head]",
                       loss_weights: "Sequence[float]", *, device: str) -> float:
        """The training objective, ``sum(weight_k * mean cross_entropy_k)``, on a labelled set in
        evaluation mode (``labels`` are dataset labels; each head maps them)."""
        raise NotImplementedError(f"backend {self.name!r} cannot run multi-task models")

    def head_model(self, model: Any, head_index: int) -> Any:
        """A single-task model sharing the multi-task model's trunk and head ``head_index`` (no copy):
        :meth:`predict`, :meth:`activations` and :meth:`kernel` take it with the spec
        ``trunk + Dense(classes, softmax)``."""
        raise NotImplementedError(f"backend {self.name!r} cannot run multi-task models")


@dataclass(frozen=True)
class Head:
    """One output of a multi-task model: a name and how a dataset label maps to this head's classes."""

    name: str
    label_map: np.ndarray
    """``label_map[dataset_label]`` is the head's class (int64); the identity for the dataset's own classes."""

    @property
    def classes(self) -> int:
        return int(self.label_map.max()) + 1


def observed_head(loss_weights: "Sequence[float]") -> int:
    """The head whose metrics go to a TrainObserver: the one with the largest weight (the first on ties)."""
    return max(range(len(loss_weights)), key=lambda k: (loss_weights[k], -k))


def nvidia_driver() -> str | None:
    """The NVIDIA driver version from nvidia-smi (no framework needed), or None where there is none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0] if out.returncode == 0 and lines else None
