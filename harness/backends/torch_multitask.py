"""Multi-task training on PyTorch: one shared trunk, one linear head per task, a weighted sum of losses.

The trunk is ``build_module`` of the trunk's spec, so it is initialised and laid out exactly like a
single-task model; each head is a Glorot-initialised ``nn.Linear`` whose softmax, as in the
single-task backend, lives in the cross-entropy. Training mirrors ``TorchBackend.fit``: whole tensors
on the device, batches as slices of a shuffled index, sums kept on the device until the epoch ends.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from harness.backends.base import (
    EpochMetrics,
    MultiTaskEpoch,
    MultiTaskFit,
    NonFiniteLoss,
    TrainObserver,
    observed_head,
)
from harness.backends.torch_backend import (
    batch_weighted_mean,
    build_module,
    make_optimizer,
    synchronize,
    to_nchw,
)

if TYPE_CHECKING:
    from harness.backends.base import Head
    from harness.data import Splits
    from harness.suite.schema import TrainSettings
    from harness.suite.spec import ModelSpec


class MultiHead(nn.Module):
    """A shared trunk and one logits head per task."""

    def __init__(self, trunk: nn.Sequential, heads: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.trunk = trunk
        self.heads = nn.ModuleList(heads)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        features = self.trunk(images)
        return [head(features) for head in self.heads]


def build(trunk: "ModelSpec", heads: "Sequence[Head]", *, seed: int, device: str) -> MultiHead:
    """See :meth:`harness.backends.base.Backend.build_multitask`."""
    if len(trunk.output_shape) != 1:
        raise ValueError(f"the trunk must end in a flat vector (add a flatten layer), got {trunk.output_shape}")
    (features,) = trunk.output_shape
    torch.manual_seed(seed)
    body = build_module(trunk)
    outputs = [nn.Linear(features, head.classes) for head in heads]
    for linear in outputs:
        nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(linear.bias)
    return MultiHead(body, outputs).to(device)


def head_model(model: MultiHead, head_index: int) -> nn.Sequential:
    """The trunk's modules followed by one head, shared with ``model``."""
    return nn.Sequential(*model.trunk, model.heads[head_index])


def weighted_loss(logits: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], weights: Sequence[float],
                  reduction: str = "mean") -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The training objective ``sum(w_k * CE_k)`` and each head's own cross-entropy."""
    losses = [F.cross_entropy(out, target, reduction=reduction) for out, target in zip(logits, targets)]
    return sum(weight * loss for weight, loss in zip(weights, losses)), losses


def head_labels(labels: np.ndarray, heads: "Sequence[Head]", device: str) -> list[torch.Tensor]:
    """Each head's labels for a set of dataset labels, on the device."""
    return [torch.from_numpy(head.label_map[labels].astype(np.int64)).to(device) for head in heads]


def evaluate(model: MultiHead, images: torch.Tensor, targets: Sequence[torch.Tensor], weights: Sequence[float],
             batch_size: int = 1000) -> tuple[float, list[float], list[float]]:
    """Mean objective, each head's mean cross-entropy and accuracy (fraction), in evaluation mode."""
    model.eval()
    count = len(targets[0])
    total = torch.zeros((), device=images.device)
    losses = torch.zeros(len(targets), device=images.device)
    correct = torch.zeros(len(targets), dtype=torch.int64, device=images.device)
    with torch.inference_mode():
        for start in range(0, count, batch_size):
            logits = model(images[start : start + batch_size])
            batch = [target[start : start + batch_size] for target in targets]
            objective, per_head = weighted_loss(logits, batch, weights, reduction="sum")
            total += objective
            losses += torch.stack(per_head)
            correct += torch.stack([(out.argmax(1) == target).sum() for out, target in zip(logits, batch)])
    return float(total) / count, (losses / count).tolist(), (correct.double() / count).tolist()


def fit(model: MultiHead, splits: "Splits", heads: "Sequence[Head]", loss_weights: Sequence[float],
        train: "TrainSettings", *, epochs: int, seed: int, device: str, observer: TrainObserver) -> MultiTaskFit:
    """See :meth:`harness.backends.base.Backend.fit_multitask`."""
    torch.manual_seed(seed)
    weights = [float(w) for w in loss_weights]
    images, targets = to_nchw(splits.x_train, device), head_labels(splits.y_train, heads, device)
    val_images, val_targets = to_nchw(splits.x_val, device), head_labels(splits.y_val, heads, device)
    optimizer = make_optimizer(model, train)
    shuffle = torch.Generator().manual_seed(seed)
    count, batch = len(splits.y_train), train.batch_size
    batches = (count + batch - 1) // batch
    watched = observed_head(weights)
    history: list[MultiTaskEpoch] = []
    synchronize(device)
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        epoch_started = time.perf_counter()
        observer.start_epoch(epoch, batches)
        model.train()
        order = torch.randperm(count, generator=shuffle).to(device)
        # As in TorchBackend.fit: per-batch losses (the objective, then each head's) and predictions go
        # into preallocated device tensors and are reduced once per epoch, never read per batch.
        batch_losses = torch.empty(batches, 1 + len(heads), device=device)
        predicted = torch.empty(len(heads), count, dtype=torch.int64, device=device)
        for step, start in enumerate(range(0, count, batch)):
            index = order[start : start + batch]
            batch_targets = [target[index] for target in targets]
            logits = model(images[index])
            objective, per_head = weighted_loss(logits, batch_targets, weights)
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
            batch_losses[step] = torch.stack([objective, *per_head]).detach()
            for head, out in enumerate(logits):
                torch.argmax(out.detach(), 1, out=predicted[head, start : start + batch])
            observer.advance(1)
        mean_losses = batch_weighted_mean(batch_losses, count, batch).tolist()
        train_loss, head_losses = mean_losses[0], mean_losses[1:]
        head_accuracies = [float((predicted[head] == target[order]).sum()) / count
                           for head, target in enumerate(targets)]
        if not np.isfinite(train_loss):
            raise NonFiniteLoss(f"loss became {train_loss} in epoch {epoch}")
        if len(splits.y_val):
            val_loss, val_losses, val_accuracies = evaluate(model, val_images, val_targets, weights)
        else:
            val_loss, val_losses, val_accuracies = None, [None] * len(heads), [None] * len(heads)
        synchronize(device)
        seconds = time.perf_counter() - epoch_started
        metrics = tuple(EpochMetrics(epoch, *values, seconds)
                        for values in zip(head_losses, head_accuracies, val_losses, val_accuracies))
        history.append(MultiTaskEpoch(epoch, train_loss, val_loss, metrics, seconds))
        observer.end_epoch(metrics[watched])
    synchronize(device)
    return MultiTaskFit(history, time.perf_counter() - started)


def predict(model: MultiHead, images: np.ndarray, *, device: str, batch_size: int = 1000) -> list[np.ndarray]:
    """See :meth:`harness.backends.base.Backend.predict_multitask`."""
    model.eval()
    tensor = to_nchw(images, device)
    with torch.inference_mode():
        parts = [[out.argmax(1) for out in model(tensor[i : i + batch_size])]
                 for i in range(0, len(tensor), batch_size)]
    return [torch.cat(column).cpu().numpy().astype(np.int64) for column in zip(*parts)]


def loss(model: MultiHead, images: np.ndarray, labels: np.ndarray, heads: "Sequence[Head]",
         loss_weights: Sequence[float], *, device: str) -> float:
    """See :meth:`harness.backends.base.Backend.multitask_loss`."""
    total, _, _ = evaluate(model, to_nchw(images, device), head_labels(labels, heads, device),
                           [float(w) for w in loss_weights])
    return total
