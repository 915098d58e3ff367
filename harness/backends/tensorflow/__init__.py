"""The TensorFlow backend: :class:`TensorFlowBackend`, Keras 3 on TensorFlow, trained the way the report trained it.

``runtime`` imports the frameworks (quietly, once) and places work on a device, ``model`` builds
Keras models from specs, ``train`` compiles and fits them (single-task is the one-head case of the
multi-task loop), ``inspect`` reads layers and runs gradient ascent. This module is only the
:class:`~harness.backends.base.Backend` face of those.
"""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.backends.base import Backend, TrainObserver, nvidia_driver
from harness.threads import framework_threads
from harness.backends.metrics import FitResult, MultiTaskFit
from harness.backends.tensorflow import inspect, train
from harness.backends.tensorflow.model import build_model, build_multitask, head_model, weights_mismatch
from harness.backends.tensorflow.runtime import device_scope, frameworks
from harness.errors import UserError

if TYPE_CHECKING:
    import keras

    from harness.backends.base import Head
    from harness.data import Splits
    from harness.suite.schema import TrainSettings
    from harness.suite.spec import ModelSpec

WEIGHTS_FILE = "model.keras"
#: The first GPUs with bf16 arithmetic (NVIDIA Ampere).
BF16_COMPUTE_CAPABILITY = (8, 0)


class TensorFlowBackend(Backend):
    """Keras 3 on TensorFlow, on CPU or a CUDA GPU."""

    name = "tensorflow"
    framework_module = "tensorflow"
    extra = "tensorflow"

    def __init__(self) -> None:
        tf, keras = frameworks()
        self._tf, self._keras = tf, keras
        cores = framework_threads()
        try:
            # Only possible before TF's runtime starts; TF's own default counts the machine's cores,
            # which a container or taskset may not give this process.
            tf.config.threading.set_intra_op_parallelism_threads(cores)
            tf.config.threading.set_inter_op_parallelism_threads(cores)
        except RuntimeError:
            pass  # someone ran TF ops before us in this process; keep (and report) what they set
        for gpu in tf.config.list_physical_devices("GPU"):
            # Take GPU memory as needed, not all of it up front: a backend=all run shares the GPU with torch.
            with contextlib.suppress(RuntimeError):
                tf.config.experimental.set_memory_growth(gpu, True)

    def _gpus(self) -> list[Any]:
        return self._tf.config.list_physical_devices("GPU")

    def resolve_device(self, device: str) -> str:
        if device == "auto":
            return "cuda" if self._gpus() else "cpu"
        if device == "cuda" and not self._gpus():
            raise UserError("device 'cuda' asked for, but TensorFlow sees no GPU; use device=cpu or device=auto")
        return device

    def build(self, spec: "ModelSpec", *, seed: int, device: str) -> "keras.Sequential":
        # Seeds Python, NumPy and TF at once: the initial weights and the dropout layers' seeds.
        self._keras.utils.set_random_seed(seed)
        with device_scope(device):
            return build_model(spec)

    def count_params(self, model: "keras.Model") -> int:
        return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))

    def fit(self, model: "keras.Model", splits: "Splits", settings: "TrainSettings", *, epochs: int, seed: int,
            device: str, observer: TrainObserver) -> FitResult:
        return train.fit(model, splits, None, [1.0], settings, epochs=epochs, seed=seed, device=device,
                         observer=observer).single()

    def predict(self, model: "keras.Model", images: np.ndarray, *, device: str, batch_size: int = 1000) -> np.ndarray:
        return train.predict(model, images, device=device, batch_size=batch_size)[0]

    def save(self, model: "keras.Model", folder: Path) -> Path:
        path = folder / WEIGHTS_FILE
        model.save(path)
        return path

    def load(self, spec: "ModelSpec", path: Path, *, device: str) -> "keras.Sequential":
        path = Path(path)
        if not path.is_file():
            raise UserError(f"checkpoint {path} not found")
        if not zipfile.is_zipfile(path):  # Keras would call such a file "not found"
            raise UserError(f"checkpoint {path} is not a .keras file (a zip archive)")
        with device_scope(device):
            try:
                # safe_mode refuses code in the file; the architecture used is the spec's, the file's
                # own is only read to compare its weights with the spec's, array by array.
                stored = self._keras.saving.load_model(path, compile=False, safe_mode=True)
            except (ValueError, KeyError, OSError, TypeError, zipfile.BadZipFile) as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise UserError(f"checkpoint {path} is not a readable .keras file: {first}") from None
            model = build_model(spec)
            if problem := weights_mismatch(stored.get_weights(), model.get_weights()):
                raise UserError(f"checkpoint {path} does not fit model {spec.name!r}: {problem}")
            model.set_weights(stored.get_weights())
        return model

    def environment(self, device: str) -> dict[str, Any]:
        threading = self._tf.config.threading
        info: dict[str, Any] = {
            "tensorflow": self._tf.__version__,
            "keras": self._keras.__version__,
            # 0 means TF's default: every core it sees.
            "tensorflow_threads": threading.get_intra_op_parallelism_threads(),
            "tensorflow_inter_op_threads": threading.get_inter_op_parallelism_threads(),
        }
        if device == "cuda":
            gpus = self._gpus()
            details = self._tf.config.experimental.get_device_details(gpus[0]) if gpus else {}
            info["gpu"] = details.get("device_name")
            info["gpu_driver"] = nvidia_driver()
            info["cuda"] = self._tf.sysconfig.get_build_info().get("cuda_version")
        return info

    def native_precisions(self, device: str) -> set[str]:
        gpus = self._gpus() if device == "cuda" else []
        if not gpus:
            return super().native_precisions(device)
        capability = self._tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") or (0, 0)
        return {"fp16"} | ({"bf16"} if tuple(capability) >= BF16_COMPUTE_CAPABILITY else set())

    # --- Inspection and multi-task training (report Tasks 5 and 6) --------------------------------

    def activations(self, model: "keras.Model", images: np.ndarray, layer_index: int, *, spec: "ModelSpec",
                    device: str) -> np.ndarray:
        return inspect.activations(model, images, layer_index, spec=spec, device=device)

    def ascend(self, model: "keras.Model", start_images: np.ndarray, layer_index: int, *, spec: "ModelSpec",
               filter_index: int | Sequence[int] | None, steps: int, step_size: float,
               device: str) -> tuple[np.ndarray, np.ndarray]:
        return inspect.ascend(model, start_images, layer_index, spec=spec, filter_index=filter_index, steps=steps,
                              step_size=step_size, device=device)

    def kernel(self, model: "keras.Model", layer_index: int, *, spec: "ModelSpec") -> np.ndarray:
        return inspect.kernel(model, layer_index, spec=spec)

    def build_multitask(self, trunk: "ModelSpec", heads: "Sequence[Head]", *, seed: int, device: str) -> "keras.Model":
        self._keras.utils.set_random_seed(seed)
        return build_multitask(trunk, heads, device=device)

    def fit_multitask(self, model: "keras.Model", splits: "Splits", heads: "Sequence[Head]",
                      loss_weights: Sequence[float], settings: "TrainSettings", *, epochs: int, seed: int,
                      device: str, observer: TrainObserver) -> MultiTaskFit:
        return train.fit(model, splits, heads, loss_weights, settings, epochs=epochs, seed=seed, device=device,
                         observer=observer)

    def predict_multitask(self, model: "keras.Model", images: np.ndarray, *, device: str,
                          batch_size: int = 1000) -> list[np.ndarray]:
        return train.predict(model, images, device=device, batch_size=batch_size)

    def multitask_loss(self, model: "keras.Model", images: np.ndarray, labels: np.ndarray, heads: "Sequence[Head]",
                       loss_weights: Sequence[float], *, device: str) -> float:
        return train.multitask_loss(model, images, labels, heads, loss_weights, device=device)

    def head_model(self, model: "keras.Model", head_index: int) -> "keras.Model":
        return head_model(model, head_index)
