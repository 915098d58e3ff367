"""Keras training, the report's way: ``compile`` then ``fit`` on the NumPy arrays, for one or many heads.

Single-task training is the one-head case of the multi-task loop here: both compile sparse
categorical cross-entropy (a multi-task model with Keras' own ``loss_weights``, which give exactly
``sum(w_k * CE_k)``), run ``model.fit`` with the same progress callback, and read each epoch's logs
into the same history. A run costs what the report's plain script costs.

The fast path (``TrainSettings.fast``) changes how steps run, never the mathematics: several steps
per ``tf.function`` call (``steps_per_execution``: one Python round trip per 32 batches, the same
arithmetic bit for bit) everywhere, XLA (``jit_compile``) on a GPU, where steps are launch-bound,
and on a CPU Keras' own input pipeline with tf.data's autotuning off. On a CPU, XLA makes epochs
slower, as Keras' own "auto" setting expects (it turns XLA off on CPU-only machines); several steps
per execution save CPU time, but on a small CPU the gain shows on the wall clock only with
autotuning off, because the autotuner's threads can leave the cores idle for seconds of an epoch.
docs/performance.md has the figures and ``benchmarks/bench_epoch.py`` measures them.

Mixed precision (``TrainSettings.precision`` bf16 or fp16) puts the model's layers in Keras' mixed
policy for the length of ``fit`` (compute in bf16 or fp16, weights float32), except the output layers,
which stay float32 so that the softmax and the loss are computed in float32 (Keras' guide); fp16 wraps
the optimizer in a ``LossScaleOptimizer``. Each layer gets its own policy back after ``fit``, so the
record's accuracies measure the float32 weights, as the PyTorch backend's do.

``TrainSettings.deterministic`` runs the training under TensorFlow's op determinism
(:func:`op_determinism`), so that a GPU run repeats bit for bit, as CPU runs already do.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.backends.base import NonFiniteLoss, TrainObserver, observed_head
from harness.backends.metrics import EpochMetrics, MultiTaskEpoch, MultiTaskFit
from harness.backends.tensorflow.model import output_name, outputs_probabilities
from harness.backends.tensorflow.runtime import device_scope, frameworks

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from harness.backends.base import Head
    from harness.data import Splits
    from harness.suite.schema import TrainSettings

#: Steps per ``tf.function`` call on the fast path: one Python round trip per this many batches.
STEPS_PER_EXECUTION = 32
#: Keras' policy for each mixed precision (fp32 leaves the layers' own float32 policy alone).
MIXED_POLICIES = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


@dataclass(frozen=True)
class StepPlan:
    """What ``compile`` is told beyond the loss and optimizer."""

    #: "auto" is Keras' default: XLA on a GPU, not on a CPU-only machine.
    jit_compile: bool | str = "auto"
    steps_per_execution: int = 1
    #: False: the arrays go through Keras' own tf.data pipeline (same batches, same order) with
    #: tf.data's autotuning off; True is what ``fit`` does with arrays.
    autotune_input: bool = True

    @classmethod
    def choose(cls, train: "TrainSettings", device: str) -> "StepPlan":
        if not train.fast:
            return cls()
        if device == "cuda":
            return cls(jit_compile=True, steps_per_execution=STEPS_PER_EXECUTION)
        return cls(steps_per_execution=STEPS_PER_EXECUTION, autotune_input=keras_array_adapter() is None)

    def describe(self) -> str:
        parts = (["XLA"] if self.jit_compile is True else []) + (
            [f"{self.steps_per_execution} steps per execution"] if self.steps_per_execution > 1 else []) + (
            [] if self.autotune_input else ["input not autotuned"])
        return f"fast: {', '.join(parts)}" if parts else "plain"


def make_optimizer(train: "TrainSettings") -> "keras.optimizers.Optimizer":
    """The suite's optimizer with Keras' defaults otherwise (Adam: epsilon 1e-7, betas 0.9 / 0.999)."""
    _, keras = frameworks()
    if train.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=train.learning_rate)
    return keras.optimizers.SGD(learning_rate=train.learning_rate)


@contextlib.contextmanager
def mixed_precision(model: "keras.Model", precision: str) -> Iterator[None]:
    """The model's layers in the mixed policy of ``precision`` inside, its output layers float32; every
    layer's own policy back on the way out (nothing changes for fp32)."""
    policy = MIXED_POLICIES.get(precision)
    if policy is None:
        yield
        return
    _, keras = frameworks()
    outputs = {id(tensor._keras_history.operation) for tensor in model.outputs}
    layers = [layer for layer in model.layers
              if id(layer) not in outputs and not isinstance(layer, keras.layers.InputLayer)]
    saved = [layer.dtype_policy for layer in layers]
    try:
        for layer in layers:
            layer.dtype_policy = policy
        yield
    finally:
        for layer, own in zip(layers, saved):
            layer.dtype_policy = own


def compile_model(model: "keras.Model", heads: "Sequence[Head] | None", loss_weights: Sequence[float],
                  train: "TrainSettings", plan: StepPlan = StepPlan()) -> None:
    """Sparse categorical cross-entropy (per head, weighted, for a multi-task model) and accuracy;
    fp16 scales the loss (float16 gradients underflow without it)."""
    _, keras = frameworks()
    options: dict[str, Any] = {"jit_compile": plan.jit_compile, "steps_per_execution": plan.steps_per_execution}
    optimizer = make_optimizer(train)
    if train.precision == "fp16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    if heads is None:
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model)),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")], **options,
        )
        return
    model.compile(
        optimizer=optimizer,
        loss=[keras.losses.SparseCategoricalCrossentropy() for _ in heads],
        loss_weights=[float(w) for w in loss_weights],
        metrics=[[keras.metrics.SparseCategoricalAccuracy(name="accuracy")] for _ in heads], **options,
    )


@functools.cache
def keras_array_adapter() -> type | None:
    """Keras' data adapter for arrays, or None where a Keras release has moved it (it is not public API)."""
    try:
        from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter
    except ImportError:
        return None
    return ArrayDataAdapter


def untuned_batches(images: np.ndarray, targets: Any, batch_size: int, *, shuffle: bool) -> "tf.data.Dataset":
    """The dataset ``fit`` would make of these arrays, with tf.data's autotuning switched off.

    Keras builds it (a shuffled index permutation per epoch, batches gathered by a parallel map,
    prefetched), so the batches and their order are the ones ``fit(images, targets, shuffle=...)``
    trains on, bit for bit; ``fit`` takes no dataset options for arrays, hence Keras' data adapter
    (``StepPlan.choose`` keeps arrays where it is gone).
    Without autotuning, the map's parallelism and the prefetch buffer are fixed instead of being
    re-planned by a background thread while the epoch runs.
    """
    tf, _ = frameworks()
    adapter = keras_array_adapter()(images, targets, batch_size=batch_size, shuffle=shuffle)
    options = tf.data.Options()
    options.autotune.enabled = False
    # The index pipeline's flat_map hides the batch count; fit's epochs and progress need it.
    return adapter.get_tf_dataset().with_options(options).apply(
        tf.data.experimental.assert_cardinality(adapter.num_batches))


def head_labels(labels: np.ndarray, heads: "Sequence[Head] | None") -> Any:
    """What fit takes as targets: the labels themselves for one task, each head's labels for several."""
    if heads is None:
        return labels
    return [head.label_map[labels].astype(np.int64) for head in heads]


def log_keys(heads: "Sequence[Head] | None") -> list[str]:
    """The prefix of each head's entries in fit's logs: none for a single-task model."""
    return [""] if heads is None else [f"{output_name(k)}_" for k in range(len(heads))]


@functools.cache
def progress_callback_class() -> type:
    """The Keras Callback class that reports to a TrainObserver (defined once Keras is imported).

    ``progress_callback_class()(observer, batches, prefixes, watched)``; after fit, its ``history``
    holds one :class:`MultiTaskEpoch` per epoch (one head for a single-task model).
    """
    _, keras = frameworks()

    class ProgressCallback(keras.callbacks.Callback):
        """Forwards fit's progress to a TrainObserver, collects the history, stops on a non-finite loss.

        Only ``on_train_batch_begin`` runs per batch: once any callback overrides ``on_train_batch_end``,
        Keras converts every batch's logs to Python floats synchronously, a stall per step. Its argument
        is the first batch of the coming execution (several with ``steps_per_execution``): the batches
        before it are done, and the epoch's end accounts for the rest.
        """

        def __init__(self, observer: TrainObserver, batches: int, prefixes: list[str], watched: int) -> None:
            super().__init__()
            self.observer, self.batches, self.prefixes, self.watched = observer, batches, prefixes, watched
            self.history: list[MultiTaskEpoch] = []
            self.epoch_started = 0.0
            self.done = 0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch_started = time.perf_counter()
            self.done = 0
            self.observer.start_epoch(epoch + 1, self.batches)

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            if batch > self.done:
                self.observer.advance(batch - self.done)
                self.done = batch

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            self.observer.advance(self.batches - self.done)
            train_loss = float(logs["loss"])
            if not np.isfinite(train_loss):
                raise NonFiniteLoss(f"loss became {train_loss} in epoch {epoch + 1}")
            seconds = time.perf_counter() - self.epoch_started

            def read(key: str) -> float | None:
                return None if logs.get(key) is None else float(logs[key])

            heads = tuple(EpochMetrics(epoch + 1, read(f"{p}loss"), read(f"{p}accuracy"), read(f"val_{p}loss"),
                                       read(f"val_{p}accuracy"), seconds) for p in self.prefixes)
            self.history.append(MultiTaskEpoch(epoch + 1, train_loss, read("val_loss"), heads, seconds))
            self.observer.end_epoch(heads[self.watched])

    return ProgressCallback


@contextlib.contextmanager
def op_determinism(enabled: bool) -> Iterator[None]:
    """TensorFlow's op determinism inside the block where ``enabled``, the process's own setting after.

    Op determinism needs every random op seeded: :func:`fit` sets the global seed first. It also makes
    XLA and tf.data deterministic. Where ``enabled`` is false nothing is touched.
    """
    if not enabled:
        yield
        return
    tf, _ = frameworks()
    # Reading and clearing the setting are not public API; enabling it is.
    from tensorflow.python.framework import config as tf_config

    before = tf_config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if not before:
            tf_config.disable_op_determinism()


def fit(model: "keras.Model", splits: "Splits", heads: "Sequence[Head] | None", loss_weights: Sequence[float],
        train: "TrainSettings", *, epochs: int, seed: int, device: str, observer: TrainObserver,
        plan: StepPlan | None = None) -> MultiTaskFit:
    """Train in place; see :meth:`Backend.fit_multitask`. ``heads`` None: a single-task model on the
    dataset's labels (``loss_weights`` ``[1.0]``). ``plan`` (default: what ``train.fast`` and the
    device call for) lets tests run the GPU's settings on a CPU."""
    _, keras = frameworks()
    # Keras shuffles each epoch with TF's global seed: reseeding here makes the order the seed's.
    keras.utils.set_random_seed(seed)
    plan = plan or StepPlan.choose(train, device)
    count, batch = len(splits.y_train), train.batch_size
    callback = progress_callback_class()(observer, (count + batch - 1) // batch, log_keys(heads),
                                         observed_head(list(loss_weights)))
    validation = (splits.x_val, head_labels(splits.y_val, heads)) if len(splits.y_val) else None
    with device_scope(device), mixed_precision(model, train.precision), op_determinism(train.deterministic):
        compile_model(model, heads, loss_weights, train, plan)
        # The clock starts before the input pipeline is built: fit builds its own inside the call.
        started = time.perf_counter()
        targets = head_labels(splits.y_train, heads)
        if plan.autotune_input:
            inputs = {"x": splits.x_train, "y": targets, "batch_size": batch, "shuffle": True}
        else:
            # The dataset shuffles each epoch itself; fit's shuffle is for arrays (and warns otherwise).
            inputs = {"x": untuned_batches(splits.x_train, targets, batch, shuffle=True), "shuffle": False}
            if validation is not None:
                validation = untuned_batches(*validation, batch, shuffle=False)
        # Fit's end reads the last epoch's metrics back to Python, so the clock sees a finished GPU.
        model.fit(**inputs, epochs=epochs, validation_data=validation, verbose=0, callbacks=[callback])
        seconds = time.perf_counter() - started
    return MultiTaskFit(callback.history, seconds, plan.describe())


def predict(model: "keras.Model", images: np.ndarray, *, device: str, batch_size: int = 1000) -> list[np.ndarray]:
    """Predicted class per image for each head (int64 arrays; one for a single-task model)."""
    with device_scope(device):
        scores = model.predict(images, batch_size=batch_size, verbose=0)
    scores = scores if isinstance(scores, (list, tuple)) else [scores]
    return [np.argmax(score, axis=1).astype(np.int64) for score in scores]


def multitask_loss(model: "keras.Model", images: np.ndarray, labels: np.ndarray, heads: "Sequence[Head]",
                   loss_weights: Sequence[float], *, device: str, batch_size: int = 1000) -> float:
    """See :meth:`harness.backends.base.Backend.multitask_loss`: the loss ``compile_model`` sets up."""
    tf, keras = frameworks()
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    targets = head_labels(labels, heads)
    sums = np.zeros(len(heads))
    with device_scope(device):
        for start in range(0, len(images), batch_size):
            outputs = model(images[start : start + batch_size], training=False)
            sums += [float(tf.reduce_sum(cross_entropy(target[start : start + batch_size], output)))
                     for target, output in zip(targets, outputs)]
    return float(np.dot(loss_weights, sums / len(images)))
