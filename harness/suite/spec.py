"""Framework-neutral model specs: layers, shape inference, parameter counts and FLOPs.

A suite declares each model as a list of layers. Everything a table needs about the model (output
shapes, parameter count, FLOPs per sample, depth, width) is computed here from the spec alone, so a
suite can be checked and planned without importing a framework, and both backends can be held to
the same numbers.

Conventions (those of Keras, which the report used):
- shapes are channels-last: images ``(height, width, channels)``, vectors ``(features,)``;
- ``conv2d`` and ``maxpool2d`` use ``valid`` padding unless told otherwise;
- FLOPs count a multiply-add as 2 operations, forward pass only, per sample;
- *depth* is the number of layers with trainable parameters, less the output layer; *width* is the
  largest number of units or filters among those layers (the report's definitions).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

Shape = tuple[int, ...]
ActivationName = Literal["relu", "tanh", "sigmoid", "softmax", "linear"]


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def output_shape(self, shape: Shape) -> Shape:
        """The shape this layer produces from ``shape``; ``ValueError`` if it cannot take it."""
        return shape

    def params(self, shape: Shape) -> int:
        """Trainable parameters, given the input shape."""
        return 0

    def flops(self, shape: Shape) -> int:
        """Forward FLOPs per sample, given the input shape."""
        return 0

    @property
    def width(self) -> int:
        """Units or filters; 0 for layers without parameters."""
        return 0

    def describe(self) -> str:
        """A short label for tables and error messages."""
        return self.type  # type: ignore[attr-defined]


def _image(shape: Shape, layer: str) -> Shape:
    if len(shape) != 3:
        raise ValueError(f"{layer} needs an image input (height, width, channels), got {_fmt(shape)}")
    return shape


class Dense(_Layer):
    """Fully connected layer on a flat input."""

    type: Literal["dense"] = "dense"
    units: PositiveInt = Field(description="Number of output neurons.")
    activation: ActivationName = Field("relu", description="Activation applied to the output.")

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 1:
            raise ValueError(f"dense needs a flat input, got {_fmt(shape)}: add a flatten layer before it")
        return (self.units,)

    def params(self, shape: Shape) -> int:
        return shape[0] * self.units + self.units

    def flops(self, shape: Shape) -> int:
        return 2 * shape[0] * self.units

    @property
    def width(self) -> int:
        return self.units

    def describe(self) -> str:
        return f"Dense({self.units})"


class Conv2D(_Layer):
    """2-D convolution with square kernels."""

    type: Literal["conv2d"] = "conv2d"
    filters: PositiveInt = Field(description="Number of output channels.")
    kernel: PositiveInt = Field(description="Kernel height and width.")
    stride: PositiveInt = Field(1, description="Stride in both directions.")
    padding: Literal["valid", "same"] = Field("valid", description="'valid' (no padding) or 'same'.")
    activation: ActivationName = Field("relu", description="Activation applied to the output.")

    def output_shape(self, shape: Shape) -> Shape:
        height, width, _ = _image(shape, "conv2d")
        if self.padding == "same":
            return (math.ceil(height / self.stride), math.ceil(width / self.stride), self.filters)
        if self.kernel > min(height, width):
            raise ValueError(f"kernel {self.kernel} is larger than its {height}x{width} input")
        return ((height - self.kernel) // self.stride + 1, (width - self.kernel) // self.stride + 1, self.filters)

    def params(self, shape: Shape) -> int:
        return self.kernel * self.kernel * shape[2] * self.filters + self.filters

    def flops(self, shape: Shape) -> int:
        out_h, out_w, _ = self.output_shape(shape)
        return 2 * self.kernel * self.kernel * shape[2] * self.filters * out_h * out_w

    @property
    def width(self) -> int:
        return self.filters

    def describe(self) -> str:
        return f"Conv({self.filters},{self.kernel},{self.stride})"


class MaxPool2D(_Layer):
    """Max pooling; the stride defaults to the pool size."""

    type: Literal["maxpool2d"] = "maxpool2d"
    pool: PositiveInt = Field(2, description="Pooling window height and width.")
    stride: PositiveInt | None = Field(None, description="Stride; defaults to the pool size.")

    def output_shape(self, shape: Shape) -> Shape:
        height, width, channels = _image(shape, "maxpool2d")
        stride = self.stride or self.pool
        if self.pool > min(height, width):
            raise ValueError(f"pool {self.pool} is larger than its {height}x{width} input")
        return ((height - self.pool) // stride + 1, (width - self.pool) // stride + 1, channels)

    def describe(self) -> str:
        return f"MaxPool({self.pool})"


class Flatten(_Layer):
    """Flattens an image to a vector (channels-last order)."""

    type: Literal["flatten"] = "flatten"

    def output_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)

    def describe(self) -> str:
        return "Flatten"


class Dropout(_Layer):
    """Dropout during training; identity at evaluation."""

    type: Literal["dropout"] = "dropout"
    rate: float = Field(ge=0.0, lt=1.0, description="Fraction of units dropped, in [0, 1).")

    def describe(self) -> str:
        return f"Dropout({self.rate})"


class Activation(_Layer):
    """A standalone activation function."""

    type: Literal["activation"] = "activation"
    function: ActivationName = Field(description="The activation function.")

    def describe(self) -> str:
        return self.function


Layer = Annotated[Union[Dense, Conv2D, MaxPool2D, Flatten, Dropout, Activation], Field(discriminator="type")]
LAYER_TYPES = ("dense", "conv2d", "maxpool2d", "flatten", "dropout", "activation")


class ModelSpec(BaseModel):
    """A model as a list of layers; the last layer with parameters is the output layer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Name as the report gives it, e.g. 'CNN Baseline Model'.")
    input_shape: tuple[PositiveInt, ...] = Field((28, 28, 1), description="Input shape, channels-last.")
    layers: list[Layer] = Field(min_length=1, description="Layers in order, the output layer last.")

    @model_validator(mode="after")
    def _shapes_fit(self) -> "ModelSpec":
        # Inferring every shape here makes an impossible model a load-time error naming the layer.
        self.shapes()
        if not any(layer.width for layer in self.layers):
            raise ValueError("the model has no layer with parameters (dense or conv2d)")
        return self

    def shapes(self) -> list[Shape]:
        """Input shape followed by each layer's output shape."""
        shapes: list[Shape] = [tuple(self.input_shape)]
        for index, layer in enumerate(self.layers, start=1):
            try:
                shapes.append(layer.output_shape(shapes[-1]))
            except ValueError as error:
                raise ValueError(f"layer {index} ({layer.describe()}): {error}") from None
        return shapes

    @property
    def output_shape(self) -> Shape:
        return self.shapes()[-1]

    @property
    def params(self) -> int:
        """Trainable parameters of the whole model."""
        return sum(layer.params(shape) for layer, shape in zip(self.layers, self.shapes()))

    @property
    def flops(self) -> int:
        """Forward FLOPs per sample (multiply-add = 2)."""
        return sum(layer.flops(shape) for layer, shape in zip(self.layers, self.shapes()))

    @property
    def hidden_widths(self) -> list[int]:
        """Units or filters of each layer with parameters, the output layer excluded."""
        return [layer.width for layer in self.layers if layer.width][:-1]

    @property
    def depth(self) -> int:
        return len(self.hidden_widths)

    @property
    def max_width(self) -> int:
        return max(self.hidden_widths, default=0)

    @property
    def architecture(self) -> str:
        """A compact description, e.g. 'Conv(32,4,1) Conv(64,4,2) Flatten Dense(10)'."""
        return " ".join(layer.describe() for layer in self.layers)

    def summary(self) -> list[tuple[str, Shape, int]]:
        """(layer, output shape, parameters) per layer, like Keras' ``model.summary()``."""
        shapes = self.shapes()
        return [
            (layer.describe(), shapes[i + 1], layer.params(shapes[i])) for i, layer in enumerate(self.layers)
        ]


def _fmt(shape: Shape) -> str:
    return "x".join(str(size) for size in shape)
