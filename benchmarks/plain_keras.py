"""The report's way of training, as a plain Keras script: the yardstick for the harness's TensorFlow backend.

Usage: python benchmarks/plain_keras.py [mlp_baseline|cnn_baseline ...]

Layers are written by hand (no spec, no harness code in the timed part), then Sequential + compile +
fit with validation_data, batch 50, Adam 1e-3, verbose 0: what the report's notebook did. ``run_epoch``
times one epoch of that fit; ``benchmarks/bench_epoch.py`` runs it beside the harness in one process.
``precision`` bf16 or fp16 is Keras' mixed-precision recipe: every layer in the mixed policy but the
output layer, kept float32, and a LossScaleOptimizer for fp16 (per layer rather than the global
policy, so the harness's models built later in the same process are not affected).
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

if TYPE_CHECKING:
    from harness.data import Splits

MODELS = ("mlp_baseline", "cnn_baseline")
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def _mlp_baseline(policy: str = "float32"):
    import keras

    model = keras.Sequential()
    model.add(keras.Input(shape=(784,)))
    model.add(keras.layers.Dense(1000, activation="relu", dtype=policy))
    model.add(keras.layers.Dense(1000, activation="relu", dtype=policy))
    model.add(keras.layers.Dense(10, activation="softmax", dtype="float32"))
    return model


def _cnn_baseline(policy: str = "float32"):
    import keras

    model = keras.Sequential()
    model.add(keras.Input(shape=(28, 28, 1)))
    model.add(keras.layers.Conv2D(32, kernel_size=4, strides=1, activation="relu", dtype=policy))
    model.add(keras.layers.Conv2D(64, kernel_size=4, strides=2, activation="relu", dtype=policy))
    model.add(keras.layers.Conv2D(128, kernel_size=4, strides=2, activation="relu", dtype=policy))
    model.add(keras.layers.Flatten(dtype=policy))
    model.add(keras.layers.Dense(10, activation="softmax", dtype="float32"))
    return model


def run_epoch(model: str, splits: "Splits", precision: str = "fp32") -> float:
    """Seconds for one epoch of ``model.fit`` (validation included) of ``model`` on ``splits``.

    The clock covers the fit call alone, as the harness's ``FitResult.seconds`` does: model building
    and the reshape of the MLP's input to flat 784 vectors (the report's preprocessing) come before it.
    """
    import keras

    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; models: {', '.join(MODELS)}")
    x_train, x_val = splits.x_train, splits.x_val
    if model == "mlp_baseline":
        net = _mlp_baseline(POLICIES[precision])
        x_train, x_val = x_train.reshape(len(x_train), 784), x_val.reshape(len(x_val), 784)
    else:
        net = _cnn_baseline(POLICIES[precision])
    optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    net.compile(
        optimizer=keras.optimizers.LossScaleOptimizer(optimizer) if precision == "fp16" else optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    started = time.perf_counter()
    net.fit(
        x_train, splits.y_train, batch_size=50, epochs=1, validation_data=(x_val, splits.y_val), verbose=0
    )
    return time.perf_counter() - started


def main(argv: list[str]) -> None:
    from harness import data

    splits = data.split(data.load("mnist"), seed=0)
    for model in argv or MODELS:
        print(f"{model}: {run_epoch(model, splits):.1f} s for one epoch of plain Keras fit")


if __name__ == "__main__":
    main(sys.argv[1:])
