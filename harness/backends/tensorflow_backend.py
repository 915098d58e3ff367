"""The TensorFlow backend: Keras 3 on TensorFlow, trained the way the report trained it.

A spec becomes a ``keras.Sequential`` with Keras' own defaults (channels-last, valid padding,
Glorot-uniform kernels, zero biases, a softmax output with sparse categorical cross-entropy, Adam with
epsilon 1e-7), and ``model.fit`` trains it on the NumPy arrays, so a run here costs what the report's
plain script costs. The PyTorch backend copies these semantics; both build the same model.

TensorFlow is imported when the backend is first instantiated (``harness.backends.get_backend`` does
that after checking it is installed), never when this module is imported, and never by a torch run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.backends.base import (
    Backend,
    EpochMetrics,
    FitResult,
    NonFiniteLoss,
    TrainObserver,
    framework_threads,
    nvidia_driver,
)
from harness.errors import UserError
from harness.suite.spec import Activation, Conv2D, Dense, Dropout, Flatten, MaxPool2D

if TYPE_CHECKING:
    import keras

    from harness.data import Splits
    from harness.suite.schema import TrainSettings
    from harness.suite.spec import ModelSpec

_TF_DEVICES = {"cpu": "/CPU:0", "cuda": "/GPU:0"}
WEIGHTS_FILE = "model.keras"


@functools.cache
def _import_frameworks() -> tuple[Any, Any]:
    """``(tensorflow, keras)``, with Keras on the TensorFlow backend and TF's C++ INFO logs quiet."""
    # Both variables are read once, at import: they must be set before the first import.
    quiet = "TF_CPP_MIN_LOG_LEVEL" not in os.environ  # the user's own setting wins
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    with _native_log_filter() if quiet and "tensorflow" not in sys.modules else contextlib.nullcontext():
        import keras
        import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise UserError(
            f"keras was already imported with the {keras.backend.backend()!r} backend in this process; "
            "the tensorflow backend needs KERAS_BACKEND=tensorflow"
        )
    return tf, keras


# absl's INFO and WARNING lines ("I0000 00:00:...") and its note that it was not initialised.
_NATIVE_NOISE = re.compile(r"^([IW]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl::InitializeLog)")


@contextlib.contextmanager
def _native_log_filter() -> Iterator[None]:
    """Drop absl's INFO/WARNING lines written to file descriptor 2 while TensorFlow loads.

    TF 2.21 logs its oneDNN notice through absl before TF_CPP_MIN_LOG_LEVEL is read, so the variable
    alone cannot hide it. Native code writes to the descriptor, not to ``sys.stderr``: the descriptor
    goes to a temporary file for the import, and every other line (errors) is written back after.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                if not _NATIVE_NOISE.match(line)
            ]
            sys.stderr.write("".join(kept))


def build_model(spec: "ModelSpec") -> "keras.Sequential":
    """A ``keras.Sequential`` for the spec, taking channels-last images (or flat vectors), unseeded."""
    _, keras = _import_frameworks()
    layers: list[Any] = [keras.Input(shape=tuple(spec.input_shape))]
    for layer in spec.layers:
        if isinstance(layer, Dense):
            layers.append(keras.layers.Dense(layer.units, activation=layer.activation))
        elif isinstance(layer, Conv2D):
            layers.append(
                keras.layers.Conv2D(
                    layer.filters, layer.kernel, strides=layer.stride, padding=layer.padding, activation=layer.activation
                )
            )
        elif isinstance(layer, MaxPool2D):
            layers.append(keras.layers.MaxPooling2D(layer.pool, strides=layer.stride or layer.pool))
        elif isinstance(layer, Flatten):
            layers.append(keras.layers.Flatten())
        elif isinstance(layer, Dropout):
            layers.append(keras.layers.Dropout(layer.rate))
        elif isinstance(layer, Activation):
            layers.append(keras.layers.Activation(layer.function))
    return keras.Sequential(layers, name=_keras_name(spec.name))


def _keras_name(name: str) -> str:
    # Keras names become TF name scopes in fit, which refuse spaces and most punctuation.
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in name) or "model"


def outputs_probabilities(model: "keras.Model") -> bool:
    """Whether the model ends in a softmax (the report's way), so the loss takes probabilities.

    Anything else (a linear output) is taken as logits, as the PyTorch backend's cross-entropy does.
    Read from the built model rather than the spec, so a model from ``load`` compiles the same way.
    """
    for layer in reversed(model.layers):
        activation = getattr(layer, "activation", None)  # pooling, flatten and dropout have none
        if activation is not None:
            return getattr(activation, "__name__", "") == "softmax"
    return False


def make_optimizer(train: "TrainSettings") -> "keras.optimizers.Optimizer":
    """The suite's optimizer with Keras' defaults otherwise (Adam: epsilon 1e-7, betas 0.9 / 0.999)."""
    _, keras = _import_frameworks()
    if train.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=train.learning_rate)
    return keras.optimizers.SGD(learning_rate=train.learning_rate)


def device_scope(device: str) -> Any:
    """The TensorFlow device context for a resolved harness device ('cpu' or 'cuda')."""
    tf, _ = _import_frameworks()
    return tf.device(_TF_DEVICES[device])


def compile_model(model: "keras.Model", train: "TrainSettings") -> None:
    """Compile with the suite's optimizer and sparse categorical cross-entropy, Keras' defaults elsewhere."""
    _, keras = _import_frameworks()
    model.compile(
        optimizer=make_optimizer(train),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model)),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


@functools.cache
def progress_callback_class() -> type:
    """The Keras Callback class that reports to a TrainObserver (defined once Keras is imported).

    ``progress_callback_class()(observer, batches)``; after fit, its ``history`` holds one entry per
    epoch. A subclass changes what an epoch's logs become by overriding ``epoch_entry``.
    """
    _, keras = _import_frameworks()

    class ProgressCallback(keras.callbacks.Callback):
        """Forwards fit's progress to a TrainObserver, collects the history, stops on a non-finite loss.

        Only ``on_train_batch_begin`` runs per batch: once any callback overrides ``on_train_batch_end``,
        Keras converts every batch's logs to Python floats synchronously, a stall per step. The begin
        of batch k says batch k-1 is done, and the epoch's end accounts for the last one.
        """

        def __init__(self, observer: TrainObserver, batches: int) -> None:
            super().__init__()
            self.observer, self.batches = observer, batches
            self.history: list[Any] = []
            self.epoch_started = 0.0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch_started = time.perf_counter()
            self.observer.start_epoch(epoch + 1, self.batches)

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            if batch:
                self.observer.advance(1)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            self.observer.advance(1)
            train_loss = float(logs["loss"])
            if not np.isfinite(train_loss):
                raise NonFiniteLoss(f"loss became {train_loss} in epoch {epoch + 1}")
            entry, shown = self.epoch_entry(epoch + 1, logs, time.perf_counter() - self.epoch_started)
            self.history.append(entry)
            self.observer.end_epoch(shown)

        def epoch_entry(self, epoch: int, logs: dict, seconds: float) -> tuple[Any, EpochMetrics]:
            """The history entry for one epoch's logs (1-based ``epoch``), and the metrics the observer shows."""

            def read(key: str) -> float | None:
                return None if logs.get(key) is None else float(logs[key])

            metrics = EpochMetrics(
                epoch, read("loss"), read("accuracy"), read("val_loss"), read("val_accuracy"), seconds
            )
            return metrics, metrics

    return ProgressCallback


def _weights_mismatch(stored: list[np.ndarray], wanted: list[np.ndarray]) -> str | None:
    """Why weights of these shapes cannot go into a model that has ``wanted``; None if they can.

    Keras' own ``load_weights`` loads a file with extra layers without complaint; this is exact.
    """
    if len(stored) != len(wanted):
        return f"it holds {len(stored)} weight arrays, the model has {len(wanted)}"
    for index, (have, need) in enumerate(zip(stored, wanted), start=1):
        if have.shape != need.shape:
            return f"weight array {index} is {have.shape} in the file, {need.shape} in the model"
    return None


class TensorFlowBackend(Backend):
    """Keras 3 on TensorFlow, on CPU or a CUDA GPU."""

    name = "tensorflow"
    framework_module = "tensorflow"
    extra = "tensorflow"

    def __init__(self) -> None:
        tf, keras = _import_frameworks()
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

    def fit(
        self,
        model: "keras.Model",
        splits: "Splits",
        train: "TrainSettings",
        *,
        epochs: int,
        seed: int,
        device: str,
        observer: TrainObserver,
    ) -> FitResult:
        # Keras shuffles each epoch with TF's global seed: reseeding here makes the order the seed's.
        self._keras.utils.set_random_seed(seed)
        count, batch = len(splits.y_train), train.batch_size
        callback = progress_callback_class()(observer, (count + batch - 1) // batch)
        validation = (splits.x_val, splits.y_val) if len(splits.y_val) else None
        with device_scope(device):
            compile_model(model, train)
            started = time.perf_counter()
            # Fit's end reads the last epoch's metrics back to Python, so the clock sees a finished GPU.
            model.fit(
                splits.x_train,
                splits.y_train,
                batch_size=batch,
                epochs=epochs,
                validation_data=validation,
                shuffle=True,
                verbose=0,
                callbacks=[callback],
            )
            seconds = time.perf_counter() - started
        return FitResult(callback.history, seconds)

    def predict(self, model: "keras.Model", images: np.ndarray, *, device: str, batch_size: int = 1000) -> np.ndarray:
        with device_scope(device):
            scores = model.predict(images, batch_size=batch_size, verbose=0)
        return np.argmax(scores, axis=1).astype(np.int64)

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
            if problem := _weights_mismatch(stored.get_weights(), model.get_weights()):
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

    # --- Inspection and multi-task training (Tasks 5 and 6): see tensorflow_inspect and tensorflow_multitask ---
    # (imported per call: those modules import this one)

    def activations(self, model: "keras.Model", images: np.ndarray, layer_index: int, *, spec: "ModelSpec",
                    device: str) -> np.ndarray:
        from harness.backends import tensorflow_inspect

        return tensorflow_inspect.activations(model, images, layer_index, spec=spec, device=device)

    def ascend(self, model: "keras.Model", start_images: np.ndarray, layer_index: int, *, spec: "ModelSpec",
               filter_index: Any, steps: int, step_size: float, device: str) -> tuple[np.ndarray, np.ndarray]:
        from harness.backends import tensorflow_inspect

        return tensorflow_inspect.ascend(model, start_images, layer_index, spec=spec, filter_index=filter_index,
                                         steps=steps, step_size=step_size, device=device)

    def kernel(self, model: "keras.Model", layer_index: int, *, spec: "ModelSpec") -> np.ndarray:
        from harness.backends import tensorflow_inspect

        return tensorflow_inspect.kernel(model, layer_index, spec=spec)

    def build_multitask(self, trunk: "ModelSpec", heads: Any, *, seed: int, device: str) -> "keras.Model":
        from harness.backends import tensorflow_multitask

        return tensorflow_multitask.build(trunk, heads, seed=seed, device=device)

    def fit_multitask(self, model: "keras.Model", splits: "Splits", heads: Any, loss_weights: Any,
                      train: "TrainSettings", *, epochs: int, seed: int, device: str, observer: TrainObserver) -> Any:
        from harness.backends import tensorflow_multitask

        return tensorflow_multitask.fit(model, splits, heads, loss_weights, train, epochs=epochs, seed=seed,
                                        device=device, observer=observer)

    def predict_multitask(self, model: "keras.Model", images: np.ndarray, *, device: str,
                          batch_size: int = 1000) -> list[np.ndarray]:
        from harness.backends import tensorflow_multitask

        return tensorflow_multitask.predict(model, images, device=device, batch_size=batch_size)

    def multitask_loss(self, model: "keras.Model", images: np.ndarray, labels: np.ndarray, heads: Any,
                       loss_weights: Any, *, device: str) -> float:
        from harness.backends import tensorflow_multitask

        return tensorflow_multitask.loss(model, images, labels, heads, loss_weights, device=device)

    def head_model(self, model: "keras.Model", head_index: int) -> "keras.Model":
        from harness.backends import tensorflow_multitask

        return tensorflow_multitask.head_model(model, head_index)

    # --- end of the Tasks 5 and 6 block ---
