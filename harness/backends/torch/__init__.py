"""The PyTorch backend: :class:`TorchBackend` on CPU or CUDA.

``model`` builds networks from specs with Keras' semantics, ``train`` holds the one training loop
(single-task is its one-head case) and its fast step, ``inspect`` reads layers and runs gradient
ascent. This module is only the :class:`~harness.backends.base.Backend` face of those three.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from harness.backends.base import Backend, TrainObserver, nvidia_driver
from harness.threads import framework_threads
from harness.backends.metrics import FitResult, MultiTaskFit
from harness.backends.torch import inspect, model, train
from harness.errors import UserError

if TYPE_CHECKING:
    from harness.backends.base import Head
    from harness.data import Splits
    from harness.suite.schema import TrainSettings
    from harness.suite.spec import ModelSpec


class TorchBackend(Backend):
    """PyTorch on CPU or CUDA."""

    name = "torch"
    framework_module = "torch"
    extra = "torch"

    def __init__(self) -> None:
        # Use every core this process may run on (containers and taskset narrow it).
        torch.set_num_threads(framework_threads())
        # Subnormal floats (below 1.2e-38) take the CPU's slow path: as training goes on, Adam's tiny
        # updates make each epoch slower than the one before, which a one-epoch benchmark never shows
        # (figures in docs/performance.md). TensorFlow flushes them by default; so does this
        # backend. The mode is per thread and OpenMP's threads copy it when they are created, so it is
        # set here, before this backend runs its first parallel operation.
        torch.set_flush_denormal(True)

    def resolve_device(self, device: str) -> str:
        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise UserError("device 'cuda' asked for, but PyTorch sees no CUDA GPU; use device=cpu or device=auto")
        return device

    def build(self, spec: "ModelSpec", *, seed: int, device: str) -> nn.Sequential:
        torch.manual_seed(seed)
        return model.build_module(spec).to(device)

    def count_params(self, network: nn.Module) -> int:
        return sum(p.numel() for p in network.parameters() if p.requires_grad)

    def fit(self, network: nn.Module, splits: "Splits", settings: "TrainSettings", *, epochs: int, seed: int,
            device: str, observer: TrainObserver) -> FitResult:
        return train.fit(network, splits, None, [1.0], settings, epochs=epochs, seed=seed, device=device,
                         observer=observer).single()

    def predict(self, network: nn.Module, images: np.ndarray, *, device: str, batch_size: int = 1000) -> np.ndarray:
        return train.predict(network, images, device=device, batch_size=batch_size)[0]

    def save(self, network: nn.Module, folder: Path) -> Path:
        path = folder / "weights.pt"
        torch.save(network.state_dict(), path)
        return path

    def load(self, spec: "ModelSpec", path: Path, *, device: str) -> nn.Sequential:
        network = model.build_module(spec)
        try:
            state = torch.load(path, map_location=device, weights_only=True)
            network.load_state_dict(state)
        except FileNotFoundError:
            raise UserError(f"checkpoint {path} not found") from None
        except (RuntimeError, KeyError) as error:
            first = str(error).strip().splitlines()[0]
            raise UserError(f"checkpoint {path} does not fit model {spec.name!r}: {first}") from None
        return network.to(device)

    def environment(self, device: str) -> dict[str, Any]:
        info: dict[str, Any] = {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
        if device.startswith("cuda"):
            info["gpu"] = torch.cuda.get_device_name(0)
            info["cuda"] = torch.version.cuda
            info["gpu_driver"] = nvidia_driver()
        return info

    def native_precisions(self, device: str) -> set[str]:
        if device == "cpu":
            return super().native_precisions(device)
        # Without including_emulation=False, PyTorch answers True for GPUs that only emulate bf16.
        return {"fp16"} | ({"bf16"} if torch.cuda.is_bf16_supported(including_emulation=False) else set())

    # --- Inspection and multi-task training (report Tasks 5 and 6) --------------------------------

    def activations(self, network: nn.Sequential, images: np.ndarray, layer_index: int, *, spec: "ModelSpec",
                    device: str) -> np.ndarray:
        return inspect.activations(network, images, layer_index, spec=spec, device=device)

    def ascend(self, network: nn.Sequential, start_images: np.ndarray, layer_index: int, *, spec: "ModelSpec",
               filter_index: int | Sequence[int] | None, steps: int, step_size: float,
               device: str) -> tuple[np.ndarray, np.ndarray]:
        return inspect.ascend(network, start_images, layer_index, spec=spec, filter_index=filter_index, steps=steps,
                              step_size=step_size, device=device)

    def kernel(self, network: nn.Sequential, layer_index: int, *, spec: "ModelSpec") -> np.ndarray:
        return inspect.kernel(network, layer_index, spec=spec)

    def build_multitask(self, trunk: "ModelSpec", heads: "Sequence[Head]", *, seed: int, device: str) -> nn.Module:
        torch.manual_seed(seed)
        return model.build_multitask(trunk, heads).to(device)

    def fit_multitask(self, network: nn.Module, splits: "Splits", heads: "Sequence[Head]",
                      loss_weights: Sequence[float], settings: "TrainSettings", *, epochs: int, seed: int,
                      device: str, observer: TrainObserver) -> MultiTaskFit:
        return train.fit(network, splits, heads, loss_weights, settings, epochs=epochs, seed=seed, device=device,
                         observer=observer)

    def predict_multitask(self, network: nn.Module, images: np.ndarray, *, device: str,
                          batch_size: int = 1000) -> list[np.ndarray]:
        return train.predict(network, images, device=device, batch_size=batch_size)

    def multitask_loss(self, network: nn.Module, images: np.ndarray, labels: np.ndarray, heads: "Sequence[Head]",
                       loss_weights: Sequence[float], *, device: str) -> float:
        total, _, _ = train.evaluate(network, model.images_on(images, device),
                                     train.head_targets(labels, heads, device), [float(w) for w in loss_weights])
        return total

    def head_model(self, network: nn.Module, head_index: int) -> nn.Sequential:
        return model.head_model(network, head_index)
