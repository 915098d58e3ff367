"""Keras models from specs, single- and multi-head, with Keras' own defaults.

A spec becomes a ``keras.Sequential`` with Keras' defaults (channels-last, valid padding,
Glorot-uniform kernels, zero biases, a softmax output); the PyTorch backend copies these semantics.
A multi-task model wires the trunk's layers into a functional model with one ``Dense(classes,
softmax)`` output per head.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.backends.tensorflow.runtime import device_scope, frameworks
from harness.suite.spec import Activation, Conv2D, Dense, Dropout, Flatten, MaxPool2D

if TYPE_CHECKING:
    import keras

    from harness.backends.base import Head
    from harness.suite.spec import ModelSpec


def build_model(spec: "ModelSpec") -> "keras.Sequential":
    """A ``keras.Sequential`` for the spec, taking channels-last images (or flat vectors), unseeded."""
    _, keras = frameworks()
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


def output_name(index: int) -> str:
    """The Keras name of head ``index``; fit's logs are keyed by it (``head0_loss``, ``val_head0_accuracy``)."""
    return f"head{index}"


def build_multitask(trunk: "ModelSpec", heads: "Sequence[Head]", *, device: str) -> "keras.Model":
    """See :meth:`harness.backends.base.Backend.build_multitask` (the caller seeds)."""
    _, keras = frameworks()
    if len(trunk.output_shape) != 1:
        raise ValueError(f"the trunk must end in a flat vector (add a flatten layer), got {trunk.output_shape}")
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
    _, keras = frameworks()
    return keras.Model(model.inputs, model.outputs[head_index])


def weights_mismatch(stored: list[np.ndarray], wanted: list[np.ndarray]) -> str | None:
    """Why weights of these shapes cannot go into a model that has ``wanted``; None if they can.

    Keras' own ``load_weights`` loads a file with extra layers without complaint; this is exact.
    """
    if len(stored) != len(wanted):
        return f"it holds {len(stored)} weight arrays, the model has {len(wanted)}"
    for index, (have, need) in enumerate(zip(stored, wanted), start=1):
        if have.shape != need.shape:
            return f"weight array {index} is {have.shape} in the file, {need.shape} in the model"
    return None
