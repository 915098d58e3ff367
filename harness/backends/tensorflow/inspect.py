"""Looking inside a Keras model built from a spec: a layer's output, its kernel, gradient ascent.

A Keras model's layers (its input layer aside) are the spec's layers one to one, so a spec index is a
position in that chain; inputs run through the chain layer by layer, eagerly for reading activations
and in one compiled step function for gradient ascent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.backends.tensorflow.runtime import device_scope, frameworks

if TYPE_CHECKING:
    import keras

    from harness.suite.spec import ModelSpec

# tf.math.l2_normalize's default floor on the squared norm (Chollet's normalisation).
L2_EPSILON = 1e-12


def chain(model: "keras.Model", spec: "ModelSpec") -> list[Any]:
    """The model's layers in order, input layer excluded; they must be as many as the spec's."""
    _, keras = frameworks()
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if len(layers) != len(spec.layers):
        raise ValueError(f"the model has {len(layers)} layers, spec {spec.name!r} has {len(spec.layers)}: "
                         "it was not built from this spec")
    return layers


def prefix(model: "keras.Model", spec: "ModelSpec", layer_index: int):
    """A function from images to the output of spec layer ``layer_index`` (evaluation mode)."""
    if not 0 <= layer_index < len(spec.layers):
        raise ValueError(f"layer index {layer_index} is outside spec {spec.name!r} (0..{len(spec.layers) - 1})")
    layers = chain(model, spec)[: layer_index + 1]

    def forward(images: Any) -> Any:
        for layer in layers:
            images = layer(images, training=False)
        return images

    return forward


def activations(model: "keras.Model", images: np.ndarray, layer_index: int, *, spec: "ModelSpec",
                device: str, batch_size: int = 1000) -> np.ndarray:
    """See :meth:`harness.backends.base.Backend.activations`."""
    tf, _ = frameworks()
    forward = prefix(model, spec, layer_index)
    with device_scope(device):
        parts = [np.asarray(forward(tf.constant(images[i : i + batch_size])))
                 for i in range(0, len(images), batch_size)]
    return np.concatenate(parts)


def ascend(model: "keras.Model", start_images: np.ndarray, layer_index: int, *, spec: "ModelSpec",
           filter_index: int | Sequence[int] | None, steps: int, step_size: float,
           device: str) -> tuple[np.ndarray, np.ndarray]:
    """See :meth:`harness.backends.base.Backend.ascend`."""
    tf, _ = frameworks()
    forward = prefix(model, spec, layer_index)
    count = len(start_images)
    channels = spec.shapes()[layer_index + 1][-1]
    filters = None
    if filter_index is not None:
        chosen = np.broadcast_to(np.asarray(filter_index, dtype=np.int64), (count,))
        if chosen.min() < 0 or chosen.max() >= channels:
            raise ValueError(f"filter index out of range: the layer has {channels} filters")
        filters = tf.constant(chosen)

    def objective(images: Any) -> Any:
        outputs = forward(images)
        if filters is None:
            return tf.reduce_mean(tf.reshape(tf.square(outputs), (count, -1)), axis=1)
        chosen_maps = tf.gather(outputs, filters, axis=-1, batch_dims=1)  # (N, H, W) or (N,)
        return tf.reduce_mean(tf.reshape(chosen_maps, (count, -1)), axis=1)

    @tf.function(reduce_retracing=True)
    def step(images: Any) -> tuple[Any, Any]:
        with tf.GradientTape() as tape:
            tape.watch(images)
            values = objective(images)
            total = tf.reduce_sum(values)  # inside the tape, or it has no gradient
        gradient = tape.gradient(total, images)
        axes = list(range(1, len(images.shape)))
        gradient = tf.math.l2_normalize(gradient, axis=axes, epsilon=L2_EPSILON)
        return values, images + step_size * gradient

    history = []
    with device_scope(device):
        images = tf.constant(start_images, dtype=tf.float32)
        for _ in range(steps):
            values, images = step(images)
            history.append(values.numpy())
        history.append(objective(images).numpy())
    return images.numpy(), np.stack(history)


def kernel(model: "keras.Model", layer_index: int, *, spec: "ModelSpec") -> np.ndarray:
    """See :meth:`harness.backends.base.Backend.kernel`."""
    layer = chain(model, spec)[layer_index]
    if getattr(layer, "kernel", None) is None:
        raise ValueError(f"layer {layer_index} ({spec.layers[layer_index].describe()}) has no kernel")
    return np.asarray(layer.kernel)
