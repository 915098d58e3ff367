"""PyTorch models from specs: layers with Keras' semantics, single- and multi-head.

Layers follow Keras' semantics (the report's framework): channels-last flatten, Glorot-uniform
kernels with zero biases, so that both backends train the same model. An output softmax is folded
into the cross-entropy loss, so a model returns logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from harness.suite.spec import Activation, Conv2D, Dense, Dropout, Flatten, MaxPool2D

if TYPE_CHECKING:
    from harness.backends.base import Head
    from harness.suite.spec import ModelSpec

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "softmax": lambda: nn.Softmax(dim=1)}


class ChannelsLastFlatten(nn.Module):
    """Flatten in (H, W, C) order, like Keras, so a dense layer's weights mean the same on both backends."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)  # a view of channels-last memory: then flatten copies nothing
        return x.flatten(1)


def activation_modules(name: str, is_output: bool) -> list[nn.Module]:
    """The modules of an activation: none for linear, and none for an output softmax (folded into the
    cross-entropy, numerically stable; argmax is unchanged)."""
    if name == "linear" or (name == "softmax" and is_output):
        return []
    return [_ACTIVATIONS[name]()]


def last_parametric(spec: "ModelSpec") -> int:
    """The index of the spec's output layer (the last with weights)."""
    return max(i for i, layer in enumerate(spec.layers) if layer.width)


def glorot(module: nn.Module) -> nn.Module:
    """Keras' default initialisation for every linear and convolution layer in ``module``."""
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(sub.weight)
            nn.init.zeros_(sub.bias)
    return module


def build_module(spec: "ModelSpec") -> nn.Sequential:
    """An ``nn.Sequential`` for the spec, taking NCHW images (or flat vectors)."""
    shapes = spec.shapes()
    output = last_parametric(spec)
    modules: list[nn.Module] = []
    for index, (layer, shape) in enumerate(zip(spec.layers, shapes)):
        is_output = index == output
        if isinstance(layer, Dense):
            modules.append(nn.Linear(shape[0], layer.units))
            modules += activation_modules(layer.activation, is_output)
        elif isinstance(layer, Conv2D):
            modules.append(nn.Conv2d(shape[2], layer.filters, layer.kernel, layer.stride, padding=layer.padding))
            modules += activation_modules(layer.activation, is_output)
        elif isinstance(layer, MaxPool2D):
            modules.append(nn.MaxPool2d(layer.pool, layer.stride or layer.pool))
        elif isinstance(layer, Flatten):
            modules.append(ChannelsLastFlatten())
        elif isinstance(layer, Dropout):
            modules.append(nn.Dropout(layer.rate))
        elif isinstance(layer, Activation):
            modules += activation_modules(layer.function, is_output=index > output)
    return glorot(nn.Sequential(*modules))


class MultiHead(nn.Module):
    """A shared trunk and one logits head per task."""

    def __init__(self, trunk: nn.Sequential, heads: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.trunk = trunk
        self.heads = nn.ModuleList(heads)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        features = self.trunk(images)
        return [head(features) for head in self.heads]


def build_multitask(trunk: "ModelSpec", heads: "Sequence[Head]") -> MultiHead:
    """See :meth:`harness.backends.base.Backend.build_multitask` (the caller seeds and places it)."""
    if len(trunk.output_shape) != 1:
        raise ValueError(f"the trunk must end in a flat vector (add a flatten layer), got {trunk.output_shape}")
    (features,) = trunk.output_shape
    body = build_module(trunk)
    outputs = [nn.Linear(features, head.classes) for head in heads]
    for linear in outputs:  # after all are built: the seed's draws come in the order they always did
        glorot(linear)
    return MultiHead(body, outputs)


def head_model(model: MultiHead, head_index: int) -> nn.Sequential:
    """The trunk's modules followed by one head, shared with ``model``."""
    return nn.Sequential(*model.trunk, model.heads[head_index])


def outputs_of(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Every head's logits: a single-task model is the one-head case."""
    logits = model(images)
    return [logits] if isinstance(logits, torch.Tensor) else logits


def images_on(images: np.ndarray, device: str, channels_last: bool = False) -> torch.Tensor:
    """Channels-last NumPy images as NCHW on ``device`` (flat vectors pass unchanged): contiguous, or
    (``channels_last``) in channels-last memory, the NumPy array's own layout seen through a view."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    if tensor.dim() != 4:
        return tensor
    tensor = tensor.permute(0, 3, 1, 2)
    return tensor if channels_last else tensor.contiguous()


def has_convolutions(model: nn.Module) -> bool:
    return any(isinstance(module, nn.Conv2d) for module in model.modules())
