"""Architecture search over depth and width (report 3.2 and 4.2), framework-neutral.

A :class:`SearchSpace` declares the depths to try, the width choices of every hidden layer (units
of a dense layer, filters of a convolution), the kernel sizes (CNNs) and how many trials to draw per
depth. :func:`propose` samples the trials with optuna's seeded random sampler, as keras-tuner's
random search did for the report, and returns them as :class:`~harness.suite.spec.ModelSpec` layer lists,
so either backend can train them. Each depth has its own sampler seeded from (seed, depth): the same
space always proposes the same trials, which is what lets an interrupted search resume, and adding a
depth or more trials leaves the earlier proposals unchanged. :func:`rank` orders finished trials by
validation accuracy and picks the best and the worst of each depth.

The model families are those of the report's searches: an MLP is ``flatten, dense(w1), ...,
dense(10, softmax)``; a CNN is ``conv(w1, k1), ..., flatten, dense(10, softmax)`` with stride 1,
no padding and no pooling ("we have maintained the type of CNN structure, just added extra Conv
layers with no MaxPooling").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from harness.suite.spec import ModelSpec

INPUT_SIDE = 28
CLASSES = 10


class SearchSpace(BaseModel):
    """What the search may propose."""

    model_config = ConfigDict(extra="forbid")

    family: Literal["mlp", "cnn"] = Field(description="'mlp' (dense layers) or 'cnn' (convolutions).")
    depths: list[PositiveInt] = Field(min_length=1, description="Hidden-layer counts to try, e.g. [2, 3, 4, 5].")
    width_min: PositiveInt = Field(32, description="Smallest units/filters of a hidden layer.")
    width_max: PositiveInt = Field(512, description="Largest units/filters of a hidden layer.")
    width_step: PositiveInt = Field(32, description="Units/filters are width_min + k * width_step.")
    kernels: list[PositiveInt] = Field([2, 3, 4], min_length=1, description="Kernel sizes a convolution may use.")
    trials_per_depth: PositiveInt = Field(5, description="Trials drawn for each depth.")
    seed: int = Field(0, description="Seed of the sampler; the same seed proposes the same trials.")

    @model_validator(mode="after")
    def _feasible(self) -> "SearchSpace":
        if self.width_max < self.width_min:
            raise ValueError(f"width_max {self.width_max} is below width_min {self.width_min}")
        if len(set(self.depths)) != len(self.depths):
            raise ValueError(f"depths are listed twice: {self.depths}")
        if self.family == "cnn":
            # Valid convolutions shrink the image by k - 1 each: the deepest stack of the largest kernels must fit.
            shrink = max(self.depths) * (max(self.kernels) - 1)
            if shrink >= INPUT_SIDE:
                raise ValueError(f"{max(self.depths)} convolutions of kernel {max(self.kernels)} do not fit a "
                                 f"{INPUT_SIDE}x{INPUT_SIDE} image")
        return self

    @property
    def widths(self) -> list[int]:
        """Every width choice, smallest first."""
        return list(range(self.width_min, self.width_max + 1, self.width_step))


@dataclass(frozen=True)
class Trial:
    """One proposed architecture."""

    depth: int
    index: int
    """1-based within its depth."""
    spec: ModelSpec

    @property
    def name(self) -> str:
        return trial_name(self.depth, self.index)


def trial_name(depth: int, index: int) -> str:
    """The model name of a trial, e.g. 'depth 3 trial 2'."""
    return f"depth {depth} trial {index}"


def build_spec(family: str, widths: list[int], kernels: list[int] | None, name: str) -> ModelSpec:
    """The layer list of the report's MLP or CNN family with these hidden widths (and kernels)."""
    layers: list[dict] = []
    if family == "mlp":
        layers.append({"type": "flatten"})
        layers += [{"type": "dense", "units": width} for width in widths]
    else:
        if kernels is None or len(kernels) != len(widths):
            raise ValueError("a CNN needs one kernel size per convolution")
        layers += [{"type": "conv2d", "filters": width, "kernel": kernel} for width, kernel in zip(widths, kernels)]
        layers.append({"type": "flatten"})
    layers.append({"type": "dense", "units": CLASSES, "activation": "softmax"})
    return ModelSpec.model_validate({"name": name, "layers": layers})


def propose(space: SearchSpace) -> list[Trial]:
    """Every trial of the space, depth by depth, in a reproducible order."""
    import optuna
    from optuna.distributions import CategoricalDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per asked trial otherwise
    trials = []
    for depth in space.depths:
        sampler = optuna.samplers.RandomSampler(seed=space.seed * 1000 + depth)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        distributions: dict = {f"width_{layer}": IntDistribution(space.width_min, space.width_max,
                                                                  step=space.width_step)
                               for layer in range(1, depth + 1)}
        if space.family == "cnn":
            distributions |= {f"kernel_{layer}": CategoricalDistribution(space.kernels)
                              for layer in range(1, depth + 1)}
        for index in range(1, space.trials_per_depth + 1):
            params = study.ask(distributions).params
            widths = [int(params[f"width_{layer}"]) for layer in range(1, depth + 1)]
            kernels = None
            if space.family == "cnn":
                kernels = [int(params[f"kernel_{layer}"]) for layer in range(1, depth + 1)]
            trials.append(Trial(depth, index, build_spec(space.family, widths, kernels, trial_name(depth, index))))
    return trials


@dataclass(frozen=True)
class TrialResult:
    """A finished trial: which one, and its validation accuracy (percent)."""

    depth: int
    index: int
    val_accuracy: float


def rank(results: Iterable[TrialResult]) -> dict[int, tuple[TrialResult, TrialResult]]:
    """(best, worst) by validation accuracy for each depth that has results, depths in increasing order.

    Ties go to the earlier trial for "best" and to the later one for "worst", so the pick never
    depends on the order results arrive in.
    """
    by_depth: dict[int, list[TrialResult]] = {}
    for result in results:
        by_depth.setdefault(result.depth, []).append(result)
    ranked = {}
    for depth in sorted(by_depth):
        ordered = sorted(by_depth[depth], key=lambda r: (-r.val_accuracy, r.index))
        ranked[depth] = (ordered[0], ordered[-1])
    return ranked
