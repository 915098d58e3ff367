"""The report's single-layer perceptron on a pair of digits (Task 2), vectorised in torch.

The rule, exactly as the report gives it:

- prediction ``f = sign(w.x + b)`` with labels -1 (the pair's first digit) and +1 (its second);
  ``sign(0) = 0``, as NumPy's, so a sample exactly on the hyperplane counts as misclassified;
- loss ``J = mean |f - y|`` (a wrong sign costs 2, a zero output 1);
- a batch update from the misclassified samples only, over the whole pair at once:
  ``w += lr * sum_j (y_j - f_j) x_j`` and ``b += lr * sum_j (y_j - f_j)``
  (correct samples have ``y_j - f_j = 0``, so only misclassified ones contribute);
- stop as soon as ``J <= threshold`` or after ``max_iterations`` updates.

How iterations are counted: ``iterations`` is the number of updates made. ``losses[k]`` is the loss
after ``k`` updates (``losses[0]`` that of the initial weights), so a run that stops at the cap has
``max_iterations`` iterations and ``max_iterations + 1`` losses. The report's table shows 1001 for
such runs; ours shows 1000 and ``converged = False``.

Pixels are scaled to [0, 1]. With zero initial weights the learning rate only scales ``w`` and ``b``
and changes no prediction, so every learning rate gives the same curve (exactly: see :func:`train`);
``init_std > 0`` starts the weights from ``N(0, init_std^2)`` drawn from the seed, and then the
learning rate matters.

Speed: a forward pass is a (samples x 784) matrix-vector product, which on a CPU is bound by memory
traffic. MNIST pixels are 81% zeros, so the CPU path keeps the pair as a CSR matrix with 32-bit
indices (small enough to stay in cache), about 6 times faster than dense. The update gathers only
the misclassified rows. Measured with ``benchmarks/bench_perceptron.py``: all 45 MNIST pairs with
the 1000-iteration cap took 22 s on two cores of an H200 host (8 s on its GPU) in float32; the exact
float64 loop below was 1.2-1.5 times slower than float32 in interleaved runs on another machine.
The report took 70-100 s for each pair that hit the cap.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

LOSS_THRESHOLD = 0.001
MAX_ITERATIONS = 1000


@dataclass(frozen=True)
class PerceptronResult:
    """A trained perceptron and how it got there."""

    weights: np.ndarray
    """(features,) float32; a 28x28 image for MNIST."""
    bias: float
    losses: list[float]
    """Loss after 0, 1, ..., ``iterations`` updates."""
    iterations: int
    """Updates made (``max_iterations`` when the cap was hit)."""
    converged: bool
    """Whether the loss reached the threshold before the cap."""
    seconds: float
    """Wall-clock seconds of the training loop (data already on the device)."""

    @property
    def final_loss(self) -> float:
        return self.losses[-1]


def pair_data(images: np.ndarray, labels: np.ndarray, pair: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The samples of the two digits of ``pair``: rows float32, and -1 for ``pair[0]``, +1 for ``pair[1]``.

    uint8 images are scaled to [0, 1]; float images (already scaled by ``harness.data.split``) are
    taken as they are.
    """
    first, second = pair
    if first == second:
        raise ValueError(f"a pair needs two different classes, got {pair}")
    labels = np.asarray(labels)
    keep = (labels == first) | (labels == second)
    images = np.asarray(images)
    rows = images[keep].reshape(int(keep.sum()), -1).astype(np.float32)
    if images.dtype == np.uint8:
        rows /= np.float32(255.0)
    signs = np.where(labels[keep] == second, 1.0, -1.0).astype(np.float32)
    return rows, signs


def predict(weights: np.ndarray, bias: float, rows: np.ndarray) -> np.ndarray:
    """``sign(w.x + b)`` per row: -1, 0 or +1 (float32)."""
    return np.sign(rows @ weights + np.float32(bias)).astype(np.float32)


def accuracy(weights: np.ndarray, bias: float, rows: np.ndarray, signs: np.ndarray) -> float:
    """Share of rows whose prediction equals the label (a zero output is wrong)."""
    return float(np.mean(predict(weights, bias, rows) == signs))


def train(
    rows: np.ndarray,
    signs: np.ndarray,
    *,
    learning_rate: float,
    max_iterations: int = MAX_ITERATIONS,
    threshold: float = LOSS_THRESHOLD,
    init_std: float = 0.0,
    seed: int = 0,
    device: str = "cpu",
) -> PerceptronResult:
    """Train the report's perceptron on ``rows`` (N, features) with labels ``signs`` in {-1, +1}.

    ``device`` is a torch device name ("cpu", "cuda"). The clock starts after the data is on the
    device and a first pass has warmed it up, and is read after synchronising the device.

    The loop runs in rescaled coordinates that leave every prediction unchanged: with features
    ``x = u / d`` (``u`` the pixel values 0-255 and ``d = 255`` when the rows are MNIST pixels scaled
    to [0, 1], else ``u = x`` and ``d = 1``) it keeps ``v = (d / lr) w`` and ``c = (d^2 / lr) b``, so
    that ``sign(w.x + b) = sign(v.u + c)`` and an update is ``v += sum_j r_j u_j``, ``c += d^2 sum_j r_j``.
    The learning rate then only enters through the initial weights. From zero weights every
    quantity is an integer below 2^53, exact in float64: the run is bit-identical on every device,
    thread count and summation order, and for every learning rate.
    """
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    if max_iterations < 0:
        raise ValueError(f"max_iterations must be >= 0, got {max_iterations}")
    signs_np = np.asarray(signs, dtype=np.float64)
    if not np.all(np.abs(signs_np) == 1):
        raise ValueError("labels must be -1 or +1")
    pixels, denominator = _integer_grid(np.asarray(rows))
    dense = torch.as_tensor(pixels, device=device)
    y = torch.as_tensor(signs_np, device=device)
    forward = _forward_matrix(dense)
    generator = torch.Generator().manual_seed(seed)
    initial = torch.randn(dense.shape[1], generator=generator, dtype=torch.float64) * init_std
    v = (initial * (denominator / learning_rate)).to(device)
    c = torch.zeros((), dtype=torch.float64, device=device)
    _sync(device)
    forward @ v  # warm-up: the first sparse product allocates its workspace
    _sync(device)

    start = time.perf_counter()
    losses: list[float] = []
    iterations = 0
    while True:
        f = torch.sign(forward @ v + c)
        residual = y - f  # zero where correct, so only misclassified samples move v and c
        loss = float(residual.abs().mean())  # |f - y| = |y - f|
        losses.append(loss)
        if loss <= threshold or iterations == max_iterations:
            break
        wrong = residual.nonzero().squeeze(1)
        step = residual[wrong]
        v += step @ dense[wrong]
        c += denominator**2 * step.sum()
        iterations += 1
    _sync(device)
    seconds = time.perf_counter() - start
    return PerceptronResult(
        weights=(v.cpu().numpy() * (learning_rate / denominator)).astype(np.float32),
        bias=float(c) * learning_rate / denominator**2,
        losses=losses,
        iterations=iterations,
        converged=losses[-1] <= threshold,
        seconds=seconds,
    )


def _integer_grid(rows: np.ndarray) -> tuple[np.ndarray, float]:
    """Rows as float64 ``u`` and ``d`` with rows = u / d: u the integers 0-255 where rows are pixels / 255."""
    rows64 = rows.astype(np.float64)
    grid = np.rint(rows64 * 255.0)
    # float32(k / 255) is what harness.data and pair_data produce; anything else is taken as it is.
    if np.array_equal((grid / 255.0).astype(rows.dtype), rows):
        return grid, 255.0
    return rows64, 1.0


def _forward_matrix(dense: torch.Tensor) -> torch.Tensor:
    if dense.device.type != "cpu":
        return dense  # a GPU reads the dense matrix fast enough; sparse kernels gain nothing there
    with warnings.catch_warnings():
        # torch calls its sparse CSR support beta, and some versions warn that invariant checks are off.
        warnings.filterwarnings("ignore", message="Sparse (CSR tensor support|invariant checks)")
        csr = dense.to_sparse_csr()
        # 32-bit indices halve the index traffic: the matrix then fits in a 32 MB cache.
        return torch.sparse_csr_tensor(
            csr.crow_indices().to(torch.int32), csr.col_indices().to(torch.int32), csr.values(), csr.shape,
            check_invariants=False,  # built from a valid CSR tensor; the check would cost a pass
        )


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
