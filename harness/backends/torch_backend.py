"""The PyTorch backend.

Data lives on the device as whole tensors; a batch is a slice of a shuffled index, so the hot loop
runs no per-sample Python and copies nothing from the host. Layers follow Keras' semantics (the
report's framework): channels-last flatten, Glorot-uniform kernels with zero biases, Adam with
epsilon 1e-7, so that both backends train the same model.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

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
    from harness.data import Splits
    from harness.suite.schema import TrainSettings
    from harness.suite.spec import ModelSpec

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "softmax": lambda: nn.Softmax(dim=1)}
KERAS_ADAM_EPSILON = 1e-7


class ChannelsLastFlatten(nn.Module):
    """Flatten in (H, W, C) order, like Keras, so a dense layer's weights mean the same on both backends."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        return x.flatten(1)


def _activation(name: str, is_output: bool) -> list[nn.Module]:
    # The output softmax is folded into the cross-entropy loss (numerically stable); argmax is unchanged.
    if name == "linear" or (name == "softmax" and is_output):
        return []
    return [_ACTIVATIONS[name]()]


def build_module(spec: "ModelSpec") -> nn.Sequential:
    """An ``nn.Sequential`` for the spec, taking NCHW images (or flat vectors)."""
    shapes = spec.shapes()
    last_parametric = max(i for i, layer in enumerate(spec.layers) if layer.width)
    modules: list[nn.Module] = []
    for index, (layer, shape) in enumerate(zip(spec.layers, shapes)):
        is_output = index == last_parametric
        if isinstance(layer, Dense):
            modules.append(nn.Linear(shape[0], layer.units))
            modules += _activation(layer.activation, is_output)
        elif isinstance(layer, Conv2D):
            modules.append(nn.Conv2d(shape[2], layer.filters, layer.kernel, layer.stride, padding=layer.padding))
            modules += _activation(layer.activation, is_output)
        elif isinstance(layer, MaxPool2D):
            modules.append(nn.MaxPool2d(layer.pool, layer.stride or layer.pool))
        elif isinstance(layer, Flatten):
            modules.append(ChannelsLastFlatten())
        elif isinstance(layer, Dropout):
            modules.append(nn.Dropout(layer.rate))
        elif isinstance(layer, Activation):
            modules += _activation(layer.function, is_output=index > last_parametric)
    module = nn.Sequential(*modules)
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(sub.weight)
            nn.init.zeros_(sub.bias)
    return module


def to_nchw(images: np.ndarray, device: str) -> torch.Tensor:
    """Channels-last NumPy images as an NCHW tensor on ``device`` (flat vectors pass unchanged)."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    if tensor.dim() == 4:
        tensor = tensor.permute(0, 3, 1, 2).contiguous()
    return tensor


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so that a clock read afterwards measures it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class TorchBackend(Backend):
    """PyTorch on CPU or CUDA."""

    name = "torch"
    framework_module = "torch"
    extra = "torch"

    def __init__(self) -> None:
        # Use every core this process may run on (containers and taskset narrow it).
        torch.set_num_threads(framework_threads())

    def resolve_device(self, device: str) -> str:
        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("device 'cuda' asked for, but PyTorch sees no CUDA GPU; use device=cpu or device=auto")
        return device

    def build(self, spec: "ModelSpec", *, seed: int, device: str) -> nn.Sequential:
        torch.manual_seed(seed)
        return build_module(spec).to(device)

    def count_params(self, model: nn.Module) -> int:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def fit(
        self,
        model: nn.Module,
        splits: "Splits",
        train: "TrainSettings",
        *,
        epochs: int,
        seed: int,
        device: str,
        observer: TrainObserver,
    ) -> FitResult:
        torch.manual_seed(seed)  # dropout draws from the global generator
        images, labels = to_nchw(splits.x_train, device), torch.from_numpy(splits.y_train).to(device)
        val_images, val_labels = to_nchw(splits.x_val, device), torch.from_numpy(splits.y_val).to(device)
        optimizer = make_optimizer(model, train)
        shuffle = torch.Generator().manual_seed(seed)
        count, batch = len(labels), train.batch_size
        batches = (count + batch - 1) // batch
        history: list[EpochMetrics] = []
        synchronize(device)
        started = time.perf_counter()
        for epoch in range(1, epochs + 1):
            epoch_started = time.perf_counter()
            observer.start_epoch(epoch, batches)
            model.train()
            order = torch.randperm(count, generator=shuffle).to(device)
            # Per-batch losses and predictions are written into preallocated device tensors (one small
            # kernel each) and reduced once per epoch: reading them per batch would stall a GPU every
            # step, and extra element-wise ops per step cost ~10% on a launch-bound GPU loop.
            batch_losses = torch.empty(batches, device=device)
            predicted = torch.empty(count, dtype=torch.int64, device=device)
            for step, start in enumerate(range(0, count, batch)):
                index = order[start : start + batch]
                logits = model(images[index])
                loss = F.cross_entropy(logits, labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                batch_losses[step] = loss.detach()
                torch.argmax(logits.detach(), 1, out=predicted[start : start + batch])
                observer.advance(1)
            train_loss = float(batch_weighted_mean(batch_losses, count, batch))
            train_accuracy = float((predicted == labels[order]).sum()) / count
            if not np.isfinite(train_loss):
                raise NonFiniteLoss(f"loss became {train_loss} in epoch {epoch}")
            val_loss, val_accuracy = evaluate(model, val_images, val_labels) if len(val_labels) else (None, None)
            synchronize(device)
            metrics = EpochMetrics(
                epoch, train_loss, train_accuracy, val_loss, val_accuracy, time.perf_counter() - epoch_started
            )
            history.append(metrics)
            observer.end_epoch(metrics)
        synchronize(device)
        return FitResult(history, time.perf_counter() - started)

    def predict(self, model: nn.Module, images: np.ndarray, *, device: str, batch_size: int = 1000) -> np.ndarray:
        model.eval()
        tensor = to_nchw(images, device)
        with torch.inference_mode():
            parts = [model(tensor[i : i + batch_size]).argmax(1) for i in range(0, len(tensor), batch_size)]
        return torch.cat(parts).cpu().numpy().astype(np.int64)

    def save(self, model: nn.Module, folder: Path) -> Path:
        path = folder / "weights.pt"
        torch.save(model.state_dict(), path)
        return path

    def load(self, spec: "ModelSpec", path: Path, *, device: str) -> nn.Sequential:
        model = build_module(spec)
        try:
            state = torch.load(path, map_location=device, weights_only=True)
            model.load_state_dict(state)
        except FileNotFoundError:
            raise UserError(f"checkpoint {path} not found") from None
        except (RuntimeError, KeyError) as error:
            first = str(error).strip().splitlines()[0]
            raise UserError(f"checkpoint {path} does not fit model {spec.name!r}: {first}") from None
        return model.to(device)

    def environment(self, device: str) -> dict[str, Any]:
        info: dict[str, Any] = {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
        if device.startswith("cuda"):
            info["gpu"] = torch.cuda.get_device_name(0)
            info["cuda"] = torch.version.cuda
            info["gpu_driver"] = nvidia_driver()
        return info

    # --- Inspection and multi-task training (Tasks 5 and 6): see torch_inspect and torch_multitask ---
    # (imported per call: those modules import this one)

    def activations(self, model: nn.Sequential, images: np.ndarray, layer_index: int, *, spec: "ModelSpec",
                    device: str) -> np.ndarray:
        from harness.backends import torch_inspect

        return torch_inspect.activations(model, images, layer_index, spec=spec, device=device)

    def ascend(self, model: nn.Sequential, start_images: np.ndarray, layer_index: int, *, spec: "ModelSpec",
               filter_index: Any, steps: int, step_size: float, device: str) -> tuple[np.ndarray, np.ndarray]:
        from harness.backends import torch_inspect

        return torch_inspect.ascend(model, start_images, layer_index, spec=spec, filter_index=filter_index,
                                    steps=steps, step_size=step_size, device=device)

    def kernel(self, model: nn.Sequential, layer_index: int, *, spec: "ModelSpec") -> np.ndarray:
        from harness.backends import torch_inspect

        return torch_inspect.kernel(model, layer_index, spec=spec)

    def build_multitask(self, trunk: "ModelSpec", heads: Any, *, seed: int, device: str) -> nn.Module:
        from harness.backends import torch_multitask

        return torch_multitask.build(trunk, heads, seed=seed, device=device)

    def fit_multitask(self, model: nn.Module, splits: "Splits", heads: Any, loss_weights: Any,
                      train: "TrainSettings", *, epochs: int, seed: int, device: str, observer: TrainObserver) -> Any:
        from harness.backends import torch_multitask

        return torch_multitask.fit(model, splits, heads, loss_weights, train, epochs=epochs, seed=seed,
                                   device=device, observer=observer)

    def predict_multitask(self, model: nn.Module, images: np.ndarray, *, device: str,
                          batch_size: int = 1000) -> list[np.ndarray]:
        from harness.backends import torch_multitask

        return torch_multitask.predict(model, images, device=device, batch_size=batch_size)

    def multitask_loss(self, model: nn.Module, images: np.ndarray, labels: np.ndarray, heads: Any,
                       loss_weights: Any, *, device: str) -> float:
        from harness.backends import torch_multitask

        return torch_multitask.loss(model, images, labels, heads, loss_weights, device=device)

    def head_model(self, model: nn.Module, head_index: int) -> nn.Sequential:
        from harness.backends import torch_multitask

        return torch_multitask.head_model(model, head_index)

    # --- end of the Tasks 5 and 6 block ---


def batch_weighted_mean(batch_losses: torch.Tensor, count: int, batch: int) -> torch.Tensor:
    """The per-sample mean of per-batch mean losses (rows: batches; the last batch may be smaller)."""
    sizes = torch.full((len(batch_losses),), float(batch), device=batch_losses.device)
    sizes[-1] = count - batch * (len(batch_losses) - 1)
    weights = sizes.reshape(-1, *([1] * (batch_losses.dim() - 1)))
    return (batch_losses * weights).sum(0) / count


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (fraction) over a labelled set, in evaluation mode."""
    model.eval()
    loss_sum = torch.zeros((), device=images.device)
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    with torch.inference_mode():
        for start in range(0, len(labels), batch_size):
            logits = model(images[start : start + batch_size])
            target = labels[start : start + batch_size]
            loss_sum += F.cross_entropy(logits, target, reduction="sum")
            correct += (logits.argmax(1) == target).sum()
    return float(loss_sum) / len(labels), float(correct) / len(labels)


def make_optimizer(model: nn.Module, train: "TrainSettings") -> torch.optim.Optimizer:
    """The suite's optimizer with Keras' defaults where the two frameworks differ."""
    if train.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=train.learning_rate, eps=KERAS_ADAM_EPSILON)
    return torch.optim.SGD(model.parameters(), lr=train.learning_rate)
