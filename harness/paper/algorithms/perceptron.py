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

Two implementations of the same rule:

- :func:`train`, one pair at a time in float64, the reference: a CSR matrix-vector product per update
  (MNIST pixels are 81% zeros), exact on the pixel grid (see there).
- :func:`train_pairs`, the fast path: every pair of a study at once. Samples are grouped by class, so
  each class's rows (about 6,000 for an MNIST digit) are read once per update for all the pairs that
  contain the class: one matrix-matrix product per class instead of a matrix-vector product per pair.
  On a CPU the product runs in int8 with int32 accumulation (``torch._int_mm``: pixels shifted to
  -128..127, integer weights split into base-256 digits), which is exact, so the result is
  bit-identical to :func:`train`; so are the updates (int8 residuals times the int8 rows, over only the
  misclassified rows when they are few).
  Where the int8 kernel cannot be exact (rows off the pixel grid, random initial weights) or on a GPU,
  the same loop runs its products in float64, like :func:`train`. ``tests/test_perceptron.py`` checks
  both paths against :func:`train` and each other.

Threads: :func:`train_pairs` runs on one CPU thread. Its operations are small, and a second CPU-bound
process on a two-core machine made two-thread loops up to 30 times slower (each small parallel
region waits for a descheduled thread); one thread loses little when the machine is quiet and keeps
its speed beside a neighbour.

Measured (``benchmarks/bench_perceptron.py``, the suite's real path, on this project's two-core CPU
while other jobs shared it, load 6-9): the joint loop of all 45 MNIST pairs with the 1000-update cap
took 47-125 s; one capped pair alone in :func:`train` took 5.5 s per 1000 updates on one thread under a
lighter load (17 s on two threads), and the report 70-100 s. In CPU time the joint loop costs about
27 ms per update for all 45 pairs, 0.6 ms per pair.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

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
    """Wall-clock seconds of the training loop (data already on the device). For a run trained with
    others by :func:`train_pairs`: its share of the joint loop, in proportion to its sample-updates."""
    hyperplane: tuple[np.ndarray, float] | None = field(default=None, repr=False, compare=False)
    """``(w, b)`` in float64 with ``sign(w.x + b)`` the prediction, without the float32 rounding of
    ``weights``: a positive multiple of the trained weights (``w = 255 v`` on the pixel grid, where ``v``
    is integer), for checking the hyperplane as a certificate of separability."""
    separating: tuple[np.ndarray, float] | None = field(default=None, repr=False, compare=False)
    """Where the run converged with training errors left: the hyperplane (as ``hyperplane``) that the same
    updates reached later, before the cap, with none left (:func:`train_pairs` only); else None. A
    candidate certificate of separability; it changes nothing of the result."""
    kernel: str = "float64"
    """How the products ran: "float64" (:func:`train`, or :func:`train_pairs` in float64) or "int8"."""

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
    rows = images[keep].reshape(int(keep.sum()), -1).astype(np.float32, copy=False)  # images[keep] is a copy already
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
    synchronize(device)
    forward @ v  # warm-up: the first sparse product allocates its workspace
    synchronize(device)

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
    synchronize(device)
    seconds = time.perf_counter() - start
    return _result(v.cpu().numpy(), float(c), learning_rate, denominator, losses, threshold, seconds)


def _result(v: np.ndarray, c: float, learning_rate: float, denominator: float, losses: list[float],
            threshold: float, seconds: float, kernel: str = "float64") -> PerceptronResult:
    """Back from the rescaled coordinates of the loop (see :func:`train`) to ``w`` and ``b``."""
    return PerceptronResult(
        weights=(v * (learning_rate / denominator)).astype(np.float32),
        bias=c * learning_rate / denominator**2,
        losses=losses,
        iterations=len(losses) - 1,
        converged=losses[-1] <= threshold,
        seconds=seconds,
        hyperplane=(v * denominator, c),
        kernel=kernel,
    )


@dataclass(frozen=True)
class Run:
    """One perceptron for :func:`train_pairs`: a pair of classes and its settings."""

    pair: tuple[int, int]
    """Class labels: the first is -1, the second +1."""
    learning_rate: float
    init_std: float = 0.0
    seed: int = 0


#: Kernels of :func:`train_pairs`: "int8" (CPU, exact on the pixel grid from zero weights), "float64".
KERNELS = ("auto", "int8", "float64")
#: Beyond this |v| the int8 kernel's int64 scores could overflow (|v| * 255 * 784 < 2^63); never near on MNIST
#: (|v| < 2^31 after 1000 updates), but a run that gets there goes on in float64.
_INT8_LIMIT = 2.0**40


def train_pairs(
    rows: np.ndarray,
    labels: np.ndarray,
    runs: Sequence[Run],
    *,
    max_iterations: int = MAX_ITERATIONS,
    threshold: float = LOSS_THRESHOLD,
    device: str = "cpu",
    kernel: str = "auto",
) -> list[PerceptronResult]:
    """Train every run of ``runs`` on ``rows`` (N, ...) labelled ``labels`` at once; one result per run, in order.

    Each run gets what :func:`train` gives on ``pair_data(rows, labels, run.pair)`` with the same
    settings: on the pixel grid (float32 ``k / 255`` or uint8 rows) the same losses, iterations and
    weights to the bit; elsewhere the same up to float64 rounding. Runs from zero weights that differ
    only in the learning rate are trained once (the rate then only scales ``w`` and ``b``).

    One pass over a class's rows per update serves every pair that contains the class. ``kernel``
    "auto" takes "int8" on a CPU where it is exact, else "float64". The loop runs on one CPU thread
    (see the module notes); ``seconds`` of a result is its share of the joint loop.
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if max_iterations < 0:
        raise ValueError(f"max_iterations must be >= 0, got {max_iterations}")
    for run in runs:
        if run.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {run.learning_rate}")
        if run.pair[0] == run.pair[1]:
            raise ValueError(f"a pair needs two different classes, got {run.pair}")
    if not runs:
        return []
    labels = np.asarray(labels)
    classes = sorted({label for run in runs for label in run.pair})
    flat = np.asarray(rows).reshape(len(labels), -1)
    members = {label: np.flatnonzero(labels == label) for label in classes}
    for run in runs:
        if any(len(members[label]) == 0 for label in run.pair):
            raise ValueError(f"pair {run.pair}: no samples of class "
                             f"{next(label for label in run.pair if len(members[label]) == 0)}")
    # The same integer grid as train(): pixels k / 255 become k. Rows are regrouped class by class.
    grouped = flat[np.concatenate([members[label] for label in classes])]
    ends = np.cumsum([len(members[label]) for label in classes])
    members = {label: np.arange(end - len(members[label]), end) for label, end in zip(classes, ends)}
    pixels = _pixel_grid(grouped)
    grid, denominator = (pixels, 255.0) if pixels is not None else (grouped.astype(np.float64), 1.0)

    # Distinct runs: from zero weights the learning rate changes no prediction (see train()).
    distinct: dict[tuple, int] = {}
    job_of = []
    for run in runs:
        key = (run.pair,) if run.init_std == 0 else (run.pair, run.learning_rate, run.init_std, run.seed)
        job_of.append(distinct.setdefault(key, len(distinct)))
    jobs = [runs[job_of.index(j)] for j in range(len(distinct))]

    if kernel == "auto":
        kernel = "int8" if (torch.device(device).type == "cpu" and denominator == 255.0
                            and all(job.init_std == 0 for job in jobs) and int8_kernel_works()) else "float64"
    if kernel == "int8" and (denominator != 255.0 or any(job.init_std != 0 for job in jobs)):
        raise ValueError("kernel 'int8' needs rows on the pixel grid (k / 255) and zero initial weights")

    with torch_threads(1):
        loop = _JointLoop(grid, members, jobs, denominator, device, kernel)
        losses, seconds = loop.run(max_iterations, threshold)
    results = []
    for run, job in zip(runs, job_of):
        v, c = (tensor.cpu().numpy() for tensor in loop.final[job])
        result = _result(v.copy(), float(c), run.learning_rate, denominator, losses[job], threshold, seconds[job],
                         loop.kernel_used or loop.kernel)
        if job in loop.separating:
            v, c = (tensor.cpu().numpy() for tensor in loop.separating[job])
            result = replace(result, separating=(v * denominator, float(c)))
        results.append(result)
    return results


class _JointLoop:
    """The update loop of :func:`train_pairs`: every job advances one update per pass over the classes.

    State per job ``j``: ``v[j]`` and ``c[j]`` in the rescaled coordinates of :func:`train` (float64;
    integers on the pixel grid). Per class: its rows, and per update the active jobs that contain it
    with the label (-1 or +1) the class has in each. A job's scores on a class are one column of the
    class's product, its update one row of ``residual.T @ rows``.

    The int8 kernel keeps each class's rows as ``u - 128`` in int8, only the pixels that are not zero
    throughout the class (zero pixels add nothing to ``u.v``), so ``u.v = (u - 128).v + 128 * sum(v)``
    over those pixels, and splits the integer weights into base-256 digits in -128..127:
    ``v = sum_p 256^p q_p``. Each product ``(u - 128).q_p`` is exact in int32 (at most
    784 * 128 * 128 < 2^31), and so is their recombination in float64 while every term stays below 2^53
    (else int64). The update is ``residual.T @ (u - 128) + 128 * sum(residual)``, again in int8 x int8
    -> int32, over only the rows some job got wrong when they are few.
    """

    def __init__(self, grid: np.ndarray, members: dict[int, np.ndarray], jobs: list[Run], denominator: float,
                 device: str, kernel: str):
        self.device = torch.device(device)
        self.kernel = kernel
        self.denominator = denominator
        self.jobs = jobs
        self.features = features = grid.shape[1]
        self.labels = list(members)
        self.rows: dict[int, torch.Tensor] = {}  # float64 rows (float64 kernel)
        self.shifted: dict[int, torch.Tensor] = {}  # int8 u - 128 over the used pixels (int8 kernel)
        self.pixels: dict[int, torch.Tensor] = {}  # the used pixels' indices (int8 kernel)
        masks = np.zeros((features, len(self.labels)))
        for column, (label, index) in enumerate(members.items()):
            block = np.ascontiguousarray(grid[index])
            if kernel == "int8":
                used = np.flatnonzero(block.max(axis=0) > 0) if len(block) else np.arange(0)
                masks[used, column] = 1.0
                self.pixels[label] = torch.from_numpy(used)
                shifted = (block[:, used].astype(np.int16) - 128).astype(np.int8)
                self.shifted[label] = torch.from_numpy(np.ascontiguousarray(shifted))  # row-major: read row by row
            else:
                self.rows[label] = torch.from_numpy(block.astype(np.float64)).to(self.device)
        self.masks = torch.from_numpy(masks)
        self.sizes = torch.tensor([len(members[a]) + len(members[b]) for a, b in (job.pair for job in jobs)],
                                  dtype=torch.float64, device=self.device)
        initial = []
        for job in jobs:
            generator = torch.Generator().manual_seed(job.seed)
            start = torch.randn(features, generator=generator, dtype=torch.float64) * job.init_std
            initial.append(start * (denominator / job.learning_rate))
        self.v = torch.stack(initial).to(self.device)
        self.c = torch.zeros(len(jobs), dtype=torch.float64, device=self.device)
        self._places: dict[tuple, torch.Tensor] = {}
        self.kernel_used: str | None = None

    def _plan(self, active: list[int]) -> list[dict]:
        """Per class with active jobs: the class, its column, its active jobs and its label (-1, +1) in each."""
        plan = []
        for column, label in enumerate(self.labels):
            chosen = [j for j in active if label in self.jobs[j].pair]
            if chosen:
                signs = [-1 if self.jobs[j].pair[0] == label else 1 for j in chosen]
                plan.append({"label": label, "column": column,
                             "jobs": torch.tensor(chosen, device=self.device),
                             "signs": torch.tensor(signs, dtype=torch.int8, device=self.device)})
        return plan

    def run(self, max_iterations: int, threshold: float) -> tuple[list[list[float]], list[float]]:
        """Train to the threshold or the cap; returns each job's losses and its share of the seconds.

        A job that reaches the threshold with training errors left (``0 < loss <= threshold``) is done:
        its result is that of :func:`train`. It goes on in the background, at little cost while other
        jobs still need passes over its classes, until its loss is zero or the cap: then its scores are
        all of the right sign, and ``separating[j]`` keeps that hyperplane as a certificate.
        """
        jobs = len(self.jobs)
        active = list(range(jobs))  # jobs still updating: unfinished ones, and finished ones going on
        going_on: set[int] = set()
        history: list[torch.Tensor] = []
        finished_at = [0] * jobs
        self.final: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.separating: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        iterations = 0
        plan = self._plan(active)
        synchronize(self.device)
        start = time.perf_counter()
        while active:
            int8 = self.kernel == "int8" and self._split_weights()
            self.kernel_used = self.kernel if self.kernel_used in (None, self.kernel) else "int8, then float64"
            wrong = torch.zeros(jobs, dtype=torch.int64, device=self.device)
            step_v = torch.zeros_like(self.v)
            step_c = torch.zeros(jobs, dtype=torch.float64, device=self.device)
            for entry in plan:
                if int8:
                    self._int8_class(entry, wrong, step_v, step_c)
                else:
                    self._float64_class(entry, wrong, step_v, step_c)
            losses = wrong.to(torch.float64) / self.sizes  # exact integer sums: the same float as train()'s mean
            history.append(losses)
            now = losses.cpu().numpy()
            leaving = []
            for j in active:
                if j in going_on:
                    if now[j] == 0 or iterations == max_iterations:
                        leaving.append(j)
                        if now[j] == 0:
                            self.separating[j] = (self.v[j].clone(), self.c[j].clone())
                elif now[j] <= threshold or iterations == max_iterations:
                    finished_at[j] = iterations
                    self.final[j] = (self.v[j].clone(), self.c[j].clone())
                    if 0 < now[j] and iterations < max_iterations:
                        going_on.add(j)
                    else:
                        leaving.append(j)
            if leaving or any(finished_at[j] == iterations for j in going_on):
                active = [j for j in active if j not in leaving]
                if not set(active) - going_on:
                    active = []  # only background jobs left: not worth passes of their own
                plan = self._plan(active)
            if not active:
                break
            if int8:
                # 128 * sum(residual) on every used pixel of the class: (u - 128).r + 128 * sum(r) = u.r
                step_v += 128 * (self._totals @ self.masks.T)
            keep = torch.tensor(active, device=self.device)
            self.v[keep] += step_v[keep]
            self.c[keep] += self.denominator**2 * step_c[keep]
            iterations += 1
        synchronize(self.device)
        total = time.perf_counter() - start
        table = torch.stack(history).cpu().numpy() if history else np.zeros((0, jobs))
        losses_per_job = [table[: finished_at[j] + 1, j].tolist() for j in range(jobs)]
        # Each job's share of the loop: its updates times its samples (what its products cost).
        work = np.array([(finished_at[j] + 1) * float(self.sizes[j]) for j in range(jobs)])
        seconds = (total * work / work.sum()).tolist()
        return losses_per_job, seconds

    def _float64_class(self, entry: dict, wrong: torch.Tensor, step_v: torch.Tensor, step_c: torch.Tensor) -> None:
        rows, chosen = self.rows[entry["label"]], entry["jobs"]
        scores = torch.addmm(self.c[chosen], rows, self.v[chosen].T)
        residual = entry["signs"].to(torch.float64) - torch.sign(scores)  # 0 where right, +-1 or +-2 where not
        wrong.index_add_(0, chosen, residual.abs().sum(0).to(torch.int64))
        step_v.index_add_(0, chosen, residual.T @ rows)
        step_c.index_add_(0, chosen, residual.sum(0))

    def _split_weights(self) -> bool:
        """Split the weights into int8 digits for this update; False (float64 from now on) past the int8 range."""
        largest = float(self.v.abs().max()) if self.v.numel() else 0.0
        if largest >= _INT8_LIMIT:
            self.kernel = "float64"  # exact int64 scores no longer guaranteed: go on as train() would
            for label, index in self.pixels.items():
                rows = torch.zeros(len(self.shifted[label]), self.features, dtype=torch.float64)
                rows[:, index] = self.shifted[label].to(torch.float64) + 128
                self.rows[label] = rows
            return False
        whole = self.v.to(torch.int64)
        rest, digits = whole, []
        while True:
            digit = ((rest + 128) & 255) - 128
            digits.append(digit.to(torch.int8))
            rest = (rest - digit) >> 8
            if not bool(rest.any()):
                break
        # (features, P * jobs): column p * jobs + j holds digit p of job j.
        self._digits = torch.stack(digits).reshape(len(digits) * len(self.jobs), -1).T.contiguous()
        self._count = len(digits)
        # Every term of the float64 recombination below 2^53: products < 2^24 times 256^p, plus the offset.
        offset_bound = 128 * float(self.v.abs().sum(1).max()) + float(self.c.abs().max())
        self._in_float64 = self._count <= 4 and offset_bound + 4 * 2.0**48 < 2.0**53
        if self._in_float64:
            self._offsets = torch.addmm(self.c[:, None], self.v, self.masks, alpha=128)  # exact: integers < 2^53
        else:
            self._offsets = 128 * (whole @ self.masks.to(torch.int64)) + self.c.to(torch.int64)[:, None]
        self._totals = torch.zeros(len(self.jobs), len(self.labels), dtype=torch.float64)
        return True

    def _int8_class(self, entry: dict, wrong: torch.Tensor, step_v: torch.Tensor, step_c: torch.Tensor) -> None:
        label, chosen = entry["label"], entry["jobs"]
        shifted, pixels = self.shifted[label], self.pixels[label]
        places, count = self._count, len(chosen)
        key = ("columns", places)
        if key not in entry:
            entry[key] = (torch.arange(places)[:, None] * len(self.jobs) + chosen[None, :]).reshape(-1)
        digits = self._digits.index_select(0, pixels).index_select(1, entry[key])  # (used pixels, P * k)
        products = _int8_matmul(shifted, digits)  # (rows, P * k) int32, exact
        offset = self._offsets[chosen, entry["column"]]
        if self._in_float64:
            scores = torch.addmm(offset, products.to(torch.float64), self._place_values(places, count, torch.float64))
        else:
            scores = products.to(torch.int64) @ self._place_values(places, count, torch.int64) + offset
        residual = entry["signs"] - torch.sign(scores).to(torch.int8)  # 0 where right, +-1 or +-2 where not
        wrong.index_add_(0, chosen, residual.abs().sum(0, dtype=torch.int64))
        missed = residual.any(1).nonzero().squeeze(1)
        if len(missed) > len(shifted) // 4:
            partial = _int8_matmul(residual.T, shifted)
        elif len(missed):
            partial = _int8_matmul(residual.index_select(0, missed).T, shifted.index_select(0, missed))
        else:
            return
        total = residual.sum(0, dtype=torch.int64).to(torch.float64)
        step_v.index_put_((chosen[:, None], pixels[None, :]), partial.to(torch.float64), accumulate=True)
        step_c.index_add_(0, chosen, total)
        self._totals[chosen, entry["column"]] += total

    def _place_values(self, places: int, count: int, dtype: torch.dtype) -> torch.Tensor:
        """(places * count, count): row ``p * count + j`` holds 256^p in column j."""
        key = (places, count, dtype)
        if key not in self._places:
            matrix = torch.zeros(places * count, count, dtype=dtype)
            for p in range(places):
                matrix[p * count:(p + 1) * count] += torch.eye(count, dtype=dtype) * 256**p
            self._places[key] = matrix
        return self._places[key]


def _int8_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for int8 matrices, exact in int32 (``torch._int_mm``), on row-major copies.

    torch 2.13's CPU ``_int_mm`` reads a (1, n) matrix wrongly when its first stride is not n (as in the
    transpose of an (n, 1) matrix, which torch calls contiguous): every operand is given the canonical
    row-major strides first.
    """
    a, b = a.contiguous(), b.contiguous()
    return torch._int_mm(a.as_strided(a.shape, (a.shape[1], 1)), b.as_strided(b.shape, (b.shape[1], 1)))


@functools.lru_cache(maxsize=1)
def int8_kernel_works() -> bool:
    """Whether ``torch._int_mm`` exists here and multiplies exactly, on the shapes the loop uses (checked once)."""
    if not hasattr(torch, "_int_mm"):
        return False
    generator = torch.Generator().manual_seed(0)
    try:
        for m, k, n in [(1, 300, 17), (300, 1, 5), (37, 300, 1), (300, 37, 9), (2, 784, 36)]:
            a = torch.randint(-128, 128, (m, k), generator=generator, dtype=torch.int8)
            b = torch.randint(-128, 128, (n, k), generator=generator, dtype=torch.int8).T
            for left in (a, a.T.contiguous().T):
                if not torch.equal(_int8_matmul(left, b), left.to(torch.int32) @ b.to(torch.int32)):
                    return False
    except (RuntimeError, NotImplementedError):
        return False
    return True


def synchronize(device: "str | torch.device") -> None:
    """Wait for queued GPU work, so that a clock read afterwards measures it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run torch's CPU operations on ``count`` threads inside the block, then restore the setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _integer_grid(rows: np.ndarray) -> tuple[np.ndarray, float]:
    """Rows as float64 ``u`` and ``d`` with rows = u / d: u the integers 0-255 where rows are pixels / 255."""
    pixels = _pixel_grid(rows)
    if pixels is not None:
        return pixels.astype(np.float64), 255.0
    return rows.astype(np.float64), 1.0


#: float32(k / 255) for k = 0..255: what harness.data and pair_data produce from uint8 pixels.
_GRID = np.arange(256, dtype=np.float32) / np.float32(255.0)


def _pixel_grid(rows: np.ndarray) -> np.ndarray | None:
    """The pixels ``k`` (uint8) of rows that are all ``float32(k / 255)``; None if any row is not."""
    if rows.dtype == np.uint8:
        return rows
    if rows.dtype != np.float32 or rows.size == 0:
        return None
    scaled = np.rint(rows * np.float32(255.0))  # float32(k / 255) * 255 rounds back to k
    if not (scaled.min() >= 0 and scaled.max() <= 255):
        return None
    pixels = scaled.astype(np.uint8)
    return pixels if np.array_equal(_GRID[pixels], rows) else None


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

