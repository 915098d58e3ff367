"""Multi-task training on Keras: one shared trunk, one softmax head per task, Keras' own loss weights.

The trunk's layers are those ``build_model`` makes for the trunk's spec, wired into a functional model
with one ``Dense(classes, softmax)`` output per head. ``compile(loss_weights=...)`` gives exactly the
objective ``sum(w_k * CE_k)``, and ``fit`` trains it the way the single-task backend does.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from harness.backends.base import (
    EpochMetrics,
    MultiTaskEpoch,
    MultiTaskFit,
    TrainObserver,
    observed_head,
)
from harness.backends.tensorflow_backend import (
    _import_frameworks,
    build_model,
    device_scope,
    make_optimizer,
    progress_callback_class,
)

if TYPE_CHECKING:
    import keras

    from harness.backends.base import Head
    from harness.data import Splits
    from harness.suite.schema import TrainSettings
    from harness.suite.spec import ModelSpec


def output_name(index: int) -> str:
    """The Keras name of head ``index``; fit's logs are keyed by it (``head0_loss``, ``val_head0_accuracy``)."""
    return f"head{index}"


def build(trunk: "ModelSpec", heads: "Sequence[Head]", *, seed: int, device: str) -> "keras.Model":
    """See :meth:`harness.backends.base.Backend.build_multitask`."""
    _, keras = _import_frameworks()
    if len(trunk.output_shape) != 1:
        raise ValueError(f"the trunk must end in a flat vector (add a flatten layer), got {trunk.output_shape}")
    keras.utils.set_random_seed(seed)
    with device_scope(device):
        inputs = keras.Input(shape=tuple(trunk.input_shape))
        features = inputs
        for layer in build_model(trunk).layers:
            features = layer(features)
        outputs = [keras.layers.Dense(head.classes, activation="softmax", name=output_name(k))(features)
                   for k, head in enumerate(heads)]
        return keras.Model(inputs, outputs, name="multitask")


def head_model(model: "keras.Model", head_index: int) -> "keras.Model":
    """The trunk and one head, sharing ``model``'s layers."""
    _, keras = _import_frameworks()
    return keras.Model(model.inputs, model.outputs[head_index])


def compile_multitask(model: "keras.Model", heads: "Sequence[Head]", loss_weights: Sequence[float],
                      train: "TrainSettings") -> None:
    """Sparse cross-entropy per head, weighted by ``loss_weights``; accuracy per head."""
    _, keras = _import_frameworks()
    model.compile(
        optimizer=make_optimizer(train),
        loss=[keras.losses.SparseCategoricalCrossentropy() for _ in heads],
        loss_weights=[float(w) for w in loss_weights],
        metrics=[[keras.metrics.SparseCategoricalAccuracy(name="accuracy")] for _ in heads],
    )


def head_labels(labels: np.ndarray, heads: "Sequence[Head]") -> list[np.ndarray]:
    return [head.label_map[labels].astype(np.int64) for head in heads]


@functools.cache
def _history_callback_class() -> type:
    """The single-task backend's progress callback, turning each epoch's logs into a MultiTaskEpoch."""

    class MultiTaskHistory(progress_callback_class()):
        """Per-batch progress as in single-task training; each head's metrics at the end of an epoch."""

        def __init__(self, observer: TrainObserver, batches: int, heads: int, watched: int) -> None:
            super().__init__(observer, batches)
            self.heads, self.watched = heads, watched

        def epoch_entry(self, epoch: int, logs: dict, seconds: float) -> tuple[MultiTaskEpoch, EpochMetrics]:
            def read(key: str) -> float | None:
                return None if logs.get(key) is None else float(logs[key])

            heads = tuple(
                EpochMetrics(epoch, read(f"{output_name(k)}_loss"), read(f"{output_name(k)}_accuracy"),
                             read(f"val_{output_name(k)}_loss"), read(f"val_{output_name(k)}_accuracy"), seconds)
                for k in range(self.heads)
            )
            return MultiTaskEpoch(epoch, float(logs["loss"]), read("val_loss"), heads, seconds), heads[self.watched]

    return MultiTaskHistory


def fit(model: "keras.Model", splits: "Splits", heads: "Sequence[Head]", loss_weights: Sequence[float],
        train: "TrainSettings", *, epochs: int, seed: int, device: str, observer: TrainObserver) -> MultiTaskFit:
    """See :meth:`harness.backends.base.Backend.fit_multitask`."""
    _, keras = _import_frameworks()
    keras.utils.set_random_seed(seed)  # fit's shuffling draws from it
    count, batch = len(splits.y_train), train.batch_size
    callback = _history_callback_class()(observer, (count + batch - 1) // batch, len(heads),
                                         observed_head(list(loss_weights)))
    validation = (splits.x_val, head_labels(splits.y_val, heads)) if len(splits.y_val) else None
    with device_scope(device):
        compile_multitask(model, heads, loss_weights, train)
        started = time.perf_counter()
        model.fit(splits.x_train, head_labels(splits.y_train, heads), batch_size=batch, epochs=epochs,
                  validation_data=validation, shuffle=True, verbose=0, callbacks=[callback])
        seconds = time.perf_counter() - started
    return MultiTaskFit(callback.history, seconds)


def predict(model: "keras.Model", images: np.ndarray, *, device: str, batch_size: int = 1000) -> list[np.ndarray]:
    """See :meth:`harness.backends.base.Backend.predict_multitask`."""
    with device_scope(device):
        scores = model.predict(images, batch_size=batch_size, verbose=0)
    return [np.argmax(score, axis=1).astype(np.int64) for score in scores]


def loss(model: "keras.Model", images: np.ndarray, labels: np.ndarray, heads: "Sequence[Head]",
         loss_weights: Sequence[float], *, device: str, batch_size: int = 1000) -> float:
    """See :meth:`harness.backends.base.Backend.multitask_loss`: the loss ``compile_multitask`` sets up."""
    tf, keras = _import_frameworks()
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    targets = head_labels(labels, heads)
    sums = np.zeros(len(heads))
    with device_scope(device):
        for start in range(0, len(images), batch_size):
            outputs = model(images[start : start + batch_size], training=False)
            sums += [float(tf.reduce_sum(cross_entropy(target[start : start + batch_size], output)))
                     for target, output in zip(targets, outputs)]
    return float(np.dot(loss_weights, sums / len(images)))
