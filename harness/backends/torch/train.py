"""The PyTorch training loop: one loop for single- and multi-task models, a plain and a fast step.

Data lives on the device as whole tensors; a batch is a slice of a shuffled index, so the hot loop
runs no per-sample Python and copies nothing from the host. Per-batch losses and predictions are
written into preallocated device tensors and reduced once per epoch: reading them per batch would
stall a GPU every step. A single-task model is the one-head case: its head's labels are the dataset's.

The fast path (``TrainSettings.fast``, on by default) keeps the mathematics and changes how it runs:
Adam's (and SGD's) fused kernel instead of a Python loop over the parameters, channels-last
convolutions, and on a GPU the whole step captured once as a CUDA graph and replayed: each part is
there because it made the step faster when measured (``benchmarks/bench_epoch.py``; figures in
docs/performance.md). ``torch.compile`` is left out: compiling a step on a small CPU takes longer
than a smoke cell's whole training.

Mixed precision (``TrainSettings.precision`` bf16 or fp16) runs the forward pass and the loss of each
step, and the per-epoch validation, under ``torch.autocast``; weights, optimizer state and the loss
stay float32, and fp16 scales the loss with a ``GradScaler`` so small gradients do not underflow.
Autocast runs with its weight cache off, as CUDA graph capture requires (a step enters autocast once,
so the cache would save nothing). A bf16 step is captured as a CUDA graph like a float32 one; an fp16
step is not: the scaler decides on the GPU whether each update is skipped and changes its scale, and
PyTorch documents no capture of that, so fp16 runs its steps eagerly and its train_path says so.

``TrainSettings.deterministic`` runs the training under PyTorch's deterministic algorithms
(:func:`determinism`), so that a GPU run repeats bit for bit, as CPU runs already do. The CUDA graph
stays: a replay launches the kernels the eager step chose, and deterministic ones stay deterministic.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from harness.backends.base import NonFiniteLoss, TrainObserver, observed_head
from harness.backends.metrics import EpochMetrics, MultiTaskEpoch, MultiTaskFit
from harness.backends.torch.model import has_convolutions, images_on, outputs_of

if TYPE_CHECKING:
    from harness.backends.base import Head
    from harness.data import Splits
    from harness.suite.schema import TrainSettings

KERAS_ADAM_EPSILON = 1e-7
#: Full-size steps run eagerly before a CUDA graph is captured: optimizer state and cuDNN's choices
#: must exist before capture (PyTorch's documented warm-up; these are real training steps).
GRAPH_WARMUP_STEPS = 3
#: The compute dtype of each mixed precision (fp32 runs without autocast).
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: cuBLAS's fixed workspace for repeatable matrix products (NVIDIA's documented setting; PyTorch
#: refuses CUDA matrix products under deterministic algorithms without it or ``:16:8``).
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


@dataclass(frozen=True)
class StepPlan:
    """How the training step runs; the mathematics is the same either way."""

    fused: bool = False
    channels_last: bool = False
    cuda_graph: bool = False
    #: A part of the fast path the device would take but this step cannot, and why ("" when none).
    left_out: str = ""

    @classmethod
    def choose(cls, model: nn.Module, train: "TrainSettings", device: str) -> "StepPlan":
        """The fast path where ``train.fast`` asks for it: every part that won when measured on the device."""
        if not train.fast:
            return cls()
        # CUDA graphs need a static batch; a GPU is the only place where launches, not arithmetic, dominate.
        graph = device.startswith("cuda")
        if graph and train.precision == "fp16":
            return cls(fused=True, channels_last=has_convolutions(model),
                       left_out="no CUDA graph: fp16's gradient scaler runs eagerly")
        return cls(fused=True, channels_last=has_convolutions(model), cuda_graph=graph)

    def describe(self) -> str:
        """What the record stores as the training path."""
        parts = [name for name, used in (("fused optimizer", self.fused), ("channels-last", self.channels_last),
                                         ("CUDA graph", self.cuda_graph)) if used]
        left_out = f" ({self.left_out})" if self.left_out else ""
        return f"fast: {', '.join(parts)}{left_out}" if parts else "plain"


def make_optimizer(model: nn.Module, train: "TrainSettings", plan: StepPlan = StepPlan()) -> torch.optim.Optimizer:
    """The suite's optimizer with Keras' defaults where the two frameworks differ."""
    fast: dict[str, bool] = {"fused": True} if plan.fused else {}
    if plan.cuda_graph:
        fast["capturable"] = True  # the step count lives on the GPU, so a graph can replay the update
    if train.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=train.learning_rate, eps=KERAS_ADAM_EPSILON, **fast)
    fast.pop("capturable", None)  # SGD keeps no step count
    return torch.optim.SGD(model.parameters(), lr=train.learning_rate, **fast)


def autocast(device: "str | torch.device", precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision for the code inside (nothing for fp32), with autocast's weight cache off."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype, cache_enabled=False)


def gradient_scaler(device: str, precision: str) -> "torch.amp.GradScaler | None":
    """fp16's loss scaler (float16 gradients underflow without it); None for fp32 and bf16."""
    return torch.amp.GradScaler(torch.device(device).type) if precision == "fp16" else None


@contextlib.contextmanager
def determinism(enabled: bool) -> Iterator[None]:
    """PyTorch's deterministic algorithms inside the block where ``enabled``, the process's own settings after.

    Deterministic algorithms also make cuDNN pick deterministic convolutions; benchmark mode, which
    times candidate kernels and may pick another one per run, is off. The cuBLAS workspace setting
    goes into the environment before the block's first matrix product (a setting the user made
    wins). Where ``enabled`` is false nothing is touched, so default runs are as they always were.
    """
    if not enabled:
        yield
        return
    workspace_set_here = "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC_WORKSPACE)
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[2]
        if workspace_set_here:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def synchronize(device: "str | torch.device") -> None:
    """Wait for queued GPU work, so that a clock read afterwards measures it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def head_targets(labels: np.ndarray, heads: "Sequence[Head] | None", device: str) -> list[torch.Tensor]:
    """Each head's labels on the device; ``heads`` None is a single-task model (the dataset's labels)."""
    if heads is None:
        return [torch.from_numpy(labels).to(device)]
    return [torch.from_numpy(head.label_map[labels].astype(np.int64)).to(device) for head in heads]


def weighted(losses: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """The objective ``sum(w_k * loss_k)``; a single task's loss as it is (no multiply and add per step)."""
    if len(losses) == 1 and weights[0] == 1.0:
        return losses[0]
    return sum(weight * loss for weight, loss in zip(weights, losses))


def batch_weighted_mean(batch_losses: torch.Tensor, count: int, batch: int) -> torch.Tensor:
    """The per-sample mean of per-batch mean losses (rows: batches; the last batch may be smaller)."""
    sizes = torch.full((len(batch_losses),), float(batch), device=batch_losses.device)
    sizes[-1] = count - batch * (len(batch_losses) - 1)
    weights = sizes.reshape(-1, *([1] * (batch_losses.dim() - 1)))
    return (batch_losses * weights).sum(0) / count


class EagerStep:
    """One optimizer step on the batch ``images[index]``, writing the batch's loss row and each head's
    predictions into the caller's slots (views into the epoch's tensors). ``precision`` bf16 or fp16
    runs the forward pass and the loss under autocast; fp16 also scales the loss."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                 targets: Sequence[torch.Tensor], weights: Sequence[float], precision: str = "fp32") -> None:
        self.model, self.optimizer, self.images, self.targets, self.weights = model, optimizer, images, targets, weights
        self.precision = precision
        self.scaler = gradient_scaler(str(images.device), precision)

    def __call__(self, index: torch.Tensor, row: torch.Tensor, predicted: torch.Tensor) -> None:
        with autocast(self.images.device, self.precision):
            logits = outputs_of(self.model, self.images[index])
            # The loss in float32 whatever the logits' dtype: its log-sum-exp is where low precision hurts.
            losses = [F.cross_entropy(out.float(), target[index]) for out, target in zip(logits, self.targets)]
            objective = weighted(losses, self.weights)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            objective.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(objective).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        # The objective, then each head's loss; a single task's row is its loss alone.
        row.copy_(objective.detach() if len(losses) == 1 else torch.stack([objective, *losses]).detach())
        for head, out in enumerate(logits):
            torch.argmax(out.detach(), 1, out=predicted[head])


class CudaGraph:
    """A captured CUDA graph with the side-stream warm-up PyTorch documents for whole-step capture."""

    def __init__(self) -> None:
        self.graph = torch.cuda.CUDAGraph()
        self.stream = torch.cuda.Stream()

    @contextlib.contextmanager
    def warming(self) -> Iterator[None]:
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            yield
        torch.cuda.current_stream().wait_stream(self.stream)

    def capture(self, step: Callable[[], None]) -> None:
        with torch.cuda.graph(self.graph):
            step()
        self.graph.replay()  # capture only records: this runs the captured step for real

    def replay(self) -> None:
        self.graph.replay()


class GraphedStep:
    """The eager step on static buffers, captured once and replayed for every full-size batch.

    A graph replays fixed addresses and shapes: each batch's index is copied into a static index
    tensor before the replay, and the loss row and predictions are copied out of static tensors
    after it. The first ``GRAPH_WARMUP_STEPS`` full batches and every short batch (the last of an
    epoch, when the batch size does not divide the data) run eagerly, on the same model and optimizer.
    ``graph`` is a :class:`CudaGraph`; tests pass an object with the same methods that calls the step.
    """

    def __init__(self, eager: EagerStep, batch: int, heads: int, row_shape: tuple[int, ...],
                 graph: "CudaGraph") -> None:
        self.eager, self.batch, self.graph = eager, batch, graph
        device = eager.images.device
        self.index = torch.zeros(batch, dtype=torch.int64, device=device)
        self.row = torch.zeros(row_shape, device=device)
        self.predicted = torch.zeros(heads, batch, dtype=torch.int64, device=device)
        self.full_steps = 0
        self.captured = False

    def __call__(self, index: torch.Tensor, row: torch.Tensor, predicted: torch.Tensor) -> None:
        if len(index) != self.batch:
            self.eager(index, row, predicted)
            return
        self.full_steps += 1
        if self.full_steps <= GRAPH_WARMUP_STEPS:
            with self.graph.warming():
                self.eager(index, row, predicted)
            return
        self.index.copy_(index)
        if self.captured:
            self.graph.replay()
        else:
            self.graph.capture(lambda: self.eager(self.index, self.row, self.predicted))
            self.captured = True
        row.copy_(self.row)
        predicted.copy_(self.predicted)


def evaluate(model: nn.Module, images: torch.Tensor, targets: Sequence[torch.Tensor], weights: Sequence[float],
             batch_size: int = 1000, precision: str = "fp32") -> tuple[float, list[float], list[float]]:
    """Mean objective, each head's mean cross-entropy and accuracy (fraction), in evaluation mode; the
    forward pass in ``precision`` (training's validation runs as its steps do, as Keras' does)."""
    model.eval()
    count = len(targets[0])
    total = torch.zeros((), device=images.device)
    losses = torch.zeros(len(targets), device=images.device)
    correct = torch.zeros(len(targets), dtype=torch.int64, device=images.device)
    with torch.inference_mode():
        for start in range(0, count, batch_size):
            with autocast(images.device, precision):
                logits = [out.float() for out in outputs_of(model, images[start : start + batch_size])]
            batch = [target[start : start + batch_size] for target in targets]
            per_head = [F.cross_entropy(out, target, reduction="sum") for out, target in zip(logits, batch)]
            total += weighted(per_head, weights)
            losses += torch.stack(per_head)
            correct += torch.stack([(out.argmax(1) == target).sum() for out, target in zip(logits, batch)])
    # Divided in double precision on the host, as the sums are read once.
    return float(total) / count, [float(v) / count for v in losses], [float(v) / count for v in correct]


def fit(model: nn.Module, splits: "Splits", heads: "Sequence[Head] | None", weights: Sequence[float],
        train: "TrainSettings", *, epochs: int, seed: int, device: str, observer: TrainObserver,
        plan: StepPlan | None = None, graph: Callable[[], "CudaGraph"] = CudaGraph) -> MultiTaskFit:
    """Train in place on ``sum(weight_k * cross_entropy_k)``; see :meth:`Backend.fit_multitask`.

    ``heads`` None is a single-task model trained on the dataset's labels (``weights`` ``[1.0]``).
    Validation metrics come at the end of each epoch, as Keras' fit gives them. ``plan`` (default:
    what ``train.fast`` and the device call for) and ``graph`` let tests run the GPU's step on a CPU.
    """
    with determinism(train.deterministic):
        return _fit(model, splits, heads, weights, train, epochs=epochs, seed=seed, device=device, observer=observer,
                    plan=plan, graph=graph)


def _fit(model: nn.Module, splits: "Splits", heads: "Sequence[Head] | None", weights: Sequence[float],
         train: "TrainSettings", *, epochs: int, seed: int, device: str, observer: TrainObserver,
         plan: StepPlan | None, graph: Callable[[], "CudaGraph"]) -> MultiTaskFit:
    """:func:`fit`'s training, run inside the suite's :func:`determinism`."""
    torch.manual_seed(seed)  # dropout draws from the global generator
    weights = [float(w) for w in weights]
    plan = plan or StepPlan.choose(model, train, device)
    if plan.channels_last:
        model.to(memory_format=torch.channels_last)
    images, targets = images_on(splits.x_train, device, plan.channels_last), head_targets(splits.y_train, heads, device)
    val_images = images_on(splits.x_val, device, plan.channels_last)
    val_targets = head_targets(splits.y_val, heads, device)
    optimizer = make_optimizer(model, train, plan)
    shuffle = torch.Generator().manual_seed(seed)
    count, batch, outputs = len(splits.y_train), train.batch_size, len(targets)
    batches = (count + batch - 1) // batch
    row_shape = () if outputs == 1 else (1 + outputs,)
    step: EagerStep | GraphedStep = EagerStep(model, optimizer, images, targets, weights, train.precision)
    if plan.cuda_graph:
        step = GraphedStep(step, batch, outputs, row_shape, graph())
    watched = observed_head(weights)
    history: list[MultiTaskEpoch] = []
    synchronize(device)
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        epoch_started = time.perf_counter()
        observer.start_epoch(epoch, batches)
        model.train()
        order = torch.randperm(count, generator=shuffle).to(device)
        batch_losses = torch.empty(batches, *row_shape, device=device)
        predicted = torch.empty(outputs, count, dtype=torch.int64, device=device)
        for index_of_step, start in enumerate(range(0, count, batch)):
            step(order[start : start + batch], batch_losses[index_of_step], predicted[:, start : start + batch])
            observer.advance(1)
        mean_losses = batch_weighted_mean(batch_losses, count, batch).reshape(-1).tolist()
        train_loss, head_losses = mean_losses[0], (mean_losses[1:] or mean_losses)
        head_accuracies = [float((predicted[head] == target[order]).sum()) / count
                           for head, target in enumerate(targets)]
        if not np.isfinite(train_loss):
            raise NonFiniteLoss(f"loss became {train_loss} in epoch {epoch}")
        if len(splits.y_val):
            val_loss, val_losses, val_accuracies = evaluate(model, val_images, val_targets, weights,
                                                            precision=train.precision)
        else:
            val_loss, val_losses, val_accuracies = None, [None] * outputs, [None] * outputs
        synchronize(device)
        seconds = time.perf_counter() - epoch_started
        metrics = tuple(EpochMetrics(epoch, *values, seconds)
                        for values in zip(head_losses, head_accuracies, val_losses, val_accuracies))
        history.append(MultiTaskEpoch(epoch, train_loss, val_loss, metrics, seconds))
        observer.end_epoch(metrics[watched])
    synchronize(device)
    return MultiTaskFit(history, time.perf_counter() - started, plan.describe())


def predict(model: nn.Module, images: np.ndarray, *, device: str, batch_size: int = 1000) -> list[np.ndarray]:
    """Predicted class per image for each head (int64 arrays; one for a single-task model), in float32
    whatever the training precision: mixed precision keeps float32 weights, and the record's accuracies
    measure those weights (as the Keras backend's do)."""
    model.eval()
    tensor = images_on(images, device)
    with torch.inference_mode():
        parts = [[out.argmax(1) for out in outputs_of(model, tensor[i : i + batch_size])]
                 for i in range(0, len(tensor), batch_size)]
    return [torch.cat(column).cpu().numpy().astype(np.int64) for column in zip(*parts)]
