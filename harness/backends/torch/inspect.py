"""Looking inside a PyTorch model built from a spec: a layer's output, its kernel, gradient ascent.

``build_module`` turns a spec into an ``nn.Sequential`` whose modules do not match the spec's layers
one to one: an activation is a module of its own, and an output softmax is folded into the loss (no
module at all). :func:`layer_ends` recovers which modules make each spec layer, with the same rule
``build_module`` applies, so callers can speak of spec layers on both backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from harness.backends.torch.model import activation_modules, images_on, last_parametric
from harness.suite.spec import Activation, Conv2D, Dense

if TYPE_CHECKING:
    from harness.suite.spec import ModelSpec

# tf.math.l2_normalize's floor on the squared norm: a zero gradient stays zero instead of dividing by 0.
L2_EPSILON = 1e-12


def layer_ends(spec: "ModelSpec", model: nn.Sequential) -> list[int]:
    """For each spec layer, one past the index of its last module in ``model``."""
    output = last_parametric(spec)
    ends, position = [], 0
    for index, layer in enumerate(spec.layers):
        if isinstance(layer, (Dense, Conv2D)):
            position += 1 + len(activation_modules(layer.activation, index == output))
        elif isinstance(layer, Activation):
            position += len(activation_modules(layer.function, index > output))
        else:
            position += 1
        ends.append(position)
    if position != len(model):
        raise ValueError(f"the model has {len(model)} modules, but spec {spec.name!r} makes {position}: "
                         "it was not built from this spec")
    return ends


def folded_softmax(spec: "ModelSpec", layer_index: int) -> bool:
    """Whether the layer's softmax was left to the loss, so that reading its output must apply it."""
    layer = spec.layers[layer_index]
    name = getattr(layer, "activation", None) or getattr(layer, "function", None)
    if name != "softmax":
        return False
    output = last_parametric(spec)
    is_output = layer_index == output if layer.width else layer_index > output
    return not activation_modules(name, is_output)


def prefix(model: nn.Sequential, spec: "ModelSpec", layer_index: int):
    """A function from NCHW images to the output of spec layer ``layer_index`` (NCHW or flat)."""
    if not 0 <= layer_index < len(spec.layers):
        raise ValueError(f"layer index {layer_index} is outside spec {spec.name!r} (0..{len(spec.layers) - 1})")
    part = model[: layer_ends(spec, model)[layer_index]]
    if folded_softmax(spec, layer_index):
        return lambda x: torch.softmax(part(x), dim=1)
    return part


def channels_last(tensor: torch.Tensor) -> np.ndarray:
    """An NCHW (or flat) tensor as a channels-last NumPy array on the host."""
    if tensor.dim() == 4:
        tensor = tensor.permute(0, 2, 3, 1)
    return tensor.detach().cpu().numpy()


def activations(model: nn.Sequential, images: np.ndarray, layer_index: int, *, spec: "ModelSpec", device: str,
                batch_size: int = 1000) -> np.ndarray:
    """See :meth:`harness.backends.base.Backend.activations`."""
    forward = prefix(model, spec, layer_index)
    model.eval()
    tensor = images_on(images, device)
    with torch.inference_mode():
        parts = [forward(tensor[i : i + batch_size]) for i in range(0, len(tensor), batch_size)]
    return channels_last(torch.cat(parts))


def objective(outputs: torch.Tensor, filters: torch.Tensor | None) -> torch.Tensor:
    """Per image: the mean of its filter's activation, or (``filters`` None) the mean squared activation."""
    if filters is None:
        return outputs.square().flatten(1).mean(1)
    chosen = outputs[torch.arange(len(outputs), device=outputs.device), filters]  # (N, H, W) or (N,)
    return chosen.flatten(1).mean(1) if chosen.dim() > 1 else chosen


def filter_tensor(filter_index: int | Sequence[int] | None, count: int, channels: int,
                  device: str) -> torch.Tensor | None:
    """The filter of each image as a tensor (None for deep dream); out-of-range filters are an error."""
    if filter_index is None:
        return None
    filters = np.broadcast_to(np.asarray(filter_index, dtype=np.int64), (count,))
    if filters.min() < 0 or filters.max() >= channels:
        raise ValueError(f"filter index out of range: the layer has {channels} filters")
    return torch.from_numpy(filters.copy()).to(device)


def ascend(model: nn.Sequential, start_images: np.ndarray, layer_index: int, *, spec: "ModelSpec",
           filter_index: int | Sequence[int] | None, steps: int, step_size: float,
           device: str) -> tuple[np.ndarray, np.ndarray]:
    """See :meth:`harness.backends.base.Backend.ascend`."""
    forward = prefix(model, spec, layer_index)
    model.eval()
    images = images_on(start_images.astype(np.float32), device)
    channels = spec.shapes()[layer_index + 1][-1]
    filters = filter_tensor(filter_index, len(images), channels, device)
    history = []
    for step in range(steps + 1):
        images.requires_grad_(True)
        values = objective(forward(images), filters)
        history.append(values.detach())
        if step == steps:
            break
        # Gradients of the input only: the weights' .grad stay untouched.
        (gradient,) = torch.autograd.grad(values.sum(), images)
        squared = gradient.square().flatten(1).sum(1).clamp_min(L2_EPSILON)
        gradient = gradient * squared.rsqrt().view(-1, *([1] * (gradient.dim() - 1)))
        images = (images + step_size * gradient).detach()
    return channels_last(images), torch.stack(history).cpu().numpy()


def kernel(model: nn.Sequential, layer_index: int, *, spec: "ModelSpec") -> np.ndarray:
    """See :meth:`harness.backends.base.Backend.kernel`."""
    ends = layer_ends(spec, model)
    first = ends[layer_index - 1] if layer_index else 0
    module = model[first]
    if isinstance(module, nn.Conv2d):
        return module.weight.detach().permute(2, 3, 1, 0).cpu().numpy()  # (out, in, kh, kw) -> Keras'
    if isinstance(module, nn.Linear):
        return module.weight.detach().T.cpu().numpy()
    raise ValueError(f"layer {layer_index} ({spec.layers[layer_index].describe()}) has no kernel")
