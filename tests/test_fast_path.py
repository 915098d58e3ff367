"""The fast training step against the plain one: same seed, a few hundred steps, the same losses.

The fast path changes how a step runs (fused optimizer kernels, channels-last convolutions, a
captured CUDA graph; XLA and several steps per call on Keras), never the mathematics, so both paths
must train the same model to the same losses up to float rounding. Rounding differences grow over
training (each step starts from slightly different weights), so the tolerance is stated per epoch's
mean training loss over 300 steps: 2% relative, plus 0.005 absolute for losses near zero. A real
change of mathematics (another epsilon, a missing bias, a wrong batch) moves them by far more.
"""

from __future__ import annotations

import contextlib
import importlib.util

import numpy as np
import pytest

from harness.backends import get_backend
from harness.backends.base import SilentObserver
from harness.suite.schema import TrainSettings
from harness.tasks import load_suite

STEPS_PER_EPOCH, EPOCHS, BATCH = 100, 3, 50  # 300 steps
RTOL, ATOL = 0.02, 0.005
MODELS = ["mlp_baseline", "cnn_baseline"]
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


@pytest.fixture(scope="module")
def splits(mnist):
    from harness import data

    # One short batch per epoch (5,030 = 100 x 50 + 30): the fast path must handle it too. Enough
    # data that 3 epochs do not memorise it: once the loss nears zero, rounding decides the rest.
    return data.split(mnist, validation_split=0.1, seed=0, train_samples=5589, test_samples=100)


def spec(suite: str):
    return load_suite(suite).models[0]


def train_losses(backend, suite: str, splits, **fit_options):
    model = backend.build(spec(suite), seed=0, device="cpu")
    fit = backend.fit(model, splits, TrainSettings(batch_size=BATCH, **fit_options), epochs=EPOCHS, seed=0,
                      device="cpu", observer=SilentObserver())
    return fit, [epoch.train_loss for epoch in fit.history], [epoch.val_accuracy for epoch in fit.history]


@pytest.mark.slow
@pytest.mark.parametrize("suite", MODELS)
def test_torch_fast_and_plain_paths_train_to_the_same_losses(suite, splits):
    backend = get_backend("torch")
    assert len(splits.y_train) == STEPS_PER_EPOCH * BATCH + 30
    fast, fast_losses, fast_val = train_losses(backend, suite, splits, fast=True)
    plain, plain_losses, plain_val = train_losses(backend, suite, splits, fast=False)
    assert plain.path == "plain"
    assert fast.path == ("fast: fused optimizer" if suite == "mlp_baseline" else "fast: fused optimizer, channels-last")
    np.testing.assert_allclose(fast_losses, plain_losses, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(fast_val, plain_val, atol=0.02)
    assert plain_losses[-1] < 0.5 * plain_losses[0]  # both really trained


class StepGraph:
    """A stand-in for :class:`CudaGraph` on a CPU: ``capture`` runs the step (as capture + replay
    does on a GPU) and keeps it, ``replay`` runs the kept step again on the same static buffers."""

    def __init__(self) -> None:
        self.captures, self.replays, self.step = 0, 0, None

    def warming(self):
        return contextlib.nullcontext()

    def capture(self, step) -> None:
        self.captures += 1
        self.step = step
        step()

    def replay(self) -> None:
        self.replays += 1
        self.step()


@pytest.mark.slow
@pytest.mark.parametrize("suite", MODELS)
def test_the_graphed_step_replays_exactly_what_the_eager_step_computes(suite, splits):
    """The CUDA-graph path's buffers (static index in, loss row and predictions out, the short last
    batch eager) on a CPU: bit for bit the numbers of the eager step with the same plan otherwise."""
    from harness.backends.torch import train

    backend = get_backend("torch")
    graphs: list[StepGraph] = []

    def run(cuda_graph: bool):
        model = backend.build(spec(suite), seed=1, device="cpu")
        plan = train.StepPlan(fused=True, channels_last=suite == "cnn_baseline", cuda_graph=cuda_graph)
        fit = train.fit(model, splits, None, [1.0], TrainSettings(batch_size=BATCH), epochs=2, seed=1, device="cpu",
                        observer=SilentObserver(), plan=plan, graph=lambda: graphs.append(StepGraph()) or graphs[-1])
        return [(e.train_loss, e.val_loss, e.heads[0].train_accuracy) for e in fit.history], fit.path

    eager, _ = run(cuda_graph=False)
    graphed, path = run(cuda_graph=True)
    assert graphed == eager
    assert path.endswith("CUDA graph")
    (graph,) = graphs
    # Per epoch: 100 full batches and one short one; the first 3 full batches warm up, the 4th is captured.
    assert (graph.captures, graph.replays) == (1, 2 * STEPS_PER_EPOCH - train.GRAPH_WARMUP_STEPS - 1)


@pytest.mark.cuda
@pytest.mark.parametrize("suite", MODELS)
def test_on_a_gpu_the_captured_graph_trains_to_the_losses_of_the_eager_step(suite, splits):
    """The real CUDA graph (warm-up, capture, replays, the short last batch eager) against the same
    fast step run eagerly on the GPU, within the rounding tolerance of the CPU comparison above."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from harness.backends.torch import train

    backend = get_backend("torch")

    def run(cuda_graph: bool):
        model = backend.build(spec(suite), seed=1, device="cuda")
        plan = train.StepPlan(fused=True, channels_last=suite == "cnn_baseline", cuda_graph=cuda_graph)
        return train.fit(model, splits, None, [1.0], TrainSettings(batch_size=BATCH), epochs=EPOCHS, seed=1,
                         device="cuda", observer=SilentObserver(), plan=plan)

    eager, graphed = run(cuda_graph=False), run(cuda_graph=True)
    assert graphed.path.endswith("CUDA graph") and not eager.path.endswith("CUDA graph")
    np.testing.assert_allclose([e.train_loss for e in graphed.history], [e.train_loss for e in eager.history],
                               rtol=RTOL, atol=ATOL)
    assert graphed.history[-1].train_loss < 0.5 * graphed.history[0].train_loss


def test_a_cpu_never_takes_the_cuda_graph():
    from harness.backends.torch import train

    model = get_backend("torch").build(spec("cnn_baseline"), seed=0, device="cpu")
    assert train.StepPlan.choose(model, TrainSettings(), "cpu") == train.StepPlan(fused=True, channels_last=True)
    assert train.StepPlan.choose(model, TrainSettings(fast=False), "cuda") == train.StepPlan()
    assert train.StepPlan.choose(model, TrainSettings(), "cuda").cuda_graph


@pytest.mark.slow
@pytest.mark.tensorflow
@pytest.mark.skipif(not HAS_TENSORFLOW, reason="tensorflow is not installed")
@pytest.mark.parametrize("suite", MODELS)
def test_keras_fast_settings_train_to_the_same_losses(suite, splits):
    """The GPU's fast settings (XLA, several steps per execution) run on a CPU as well: same losses."""
    from harness.backends.tensorflow import train

    backend = get_backend("tensorflow")
    observed = []

    class Counting(SilentObserver):
        def advance(self, batches: int = 1) -> None:
            observed.append(batches)

    def run(plan):
        model = backend.build(spec(suite), seed=0, device="cpu")
        fit = train.fit(model, splits, None, [1.0], TrainSettings(batch_size=BATCH), epochs=EPOCHS, seed=0,
                        device="cpu", observer=Counting(), plan=plan)
        return fit, [epoch.heads[0].train_loss for epoch in fit.history]

    plain, plain_losses = run(train.StepPlan())
    every_batch = list(observed)
    observed.clear()
    fast, fast_losses = run(train.StepPlan(jit_compile=True, steps_per_execution=train.STEPS_PER_EXECUTION))
    assert plain.path == "plain" and fast.path == "fast: XLA, 32 steps per execution"
    np.testing.assert_allclose(fast_losses, plain_losses, rtol=RTOL, atol=ATOL)
    assert plain_losses[-1] < 0.5 * plain_losses[0]
    # The progress bar still counts every batch, in steps of 32 (101 batches: 3 x 32 + 5 per epoch).
    assert every_batch == [1] * (STEPS_PER_EPOCH + 1) * EPOCHS
    assert observed == [32, 32, 32, 5] * EPOCHS


@pytest.mark.tensorflow
@pytest.mark.skipif(not HAS_TENSORFLOW, reason="tensorflow is not installed")
def test_keras_takes_xla_only_on_a_gpu_and_no_fast_settings_when_told_not_to():
    from harness.backends.tensorflow import train

    assert train.StepPlan.choose(TrainSettings(), "cpu") == train.StepPlan(steps_per_execution=32, autotune_input=False)
    assert train.StepPlan.choose(TrainSettings(), "cuda").jit_compile is True
    assert train.StepPlan.choose(TrainSettings(fast=False), "cuda") == train.StepPlan()


@pytest.mark.slow
@pytest.mark.tensorflow
@pytest.mark.skipif(not HAS_TENSORFLOW, reason="tensorflow is not installed")
def test_keras_fast_path_on_a_cpu_is_the_plain_arithmetic_bit_for_bit(splits):
    """On a CPU the fast path only batches steps per call and fixes its input pipeline's threads (no XLA):
    the same batches, the same numbers exactly."""
    backend = get_backend("tensorflow")
    fast, fast_losses, fast_val = train_losses(backend, "mlp_baseline", splits, fast=True)
    plain, plain_losses, plain_val = train_losses(backend, "mlp_baseline", splits, fast=False)
    assert (fast.path, plain.path) == ("fast: 32 steps per execution, input not autotuned", "plain")
    assert (fast_losses, fast_val) == (plain_losses, plain_val)


@pytest.mark.tensorflow
@pytest.mark.skipif(not HAS_TENSORFLOW, reason="tensorflow is not installed")
def test_a_keras_without_its_array_adapter_keeps_fits_own_input(monkeypatch):
    """The untuned input leans on Keras' private data adapter: where a release moved it, fit takes the
    arrays as usual and the record does not claim the untuned input."""
    from harness.backends.tensorflow import train

    monkeypatch.setattr(train, "keras_array_adapter", lambda: None)
    plan = train.StepPlan.choose(TrainSettings(), "cpu")
    assert plan == train.StepPlan(steps_per_execution=32) and plan.describe() == "fast: 32 steps per execution"


@pytest.mark.slow
@pytest.mark.tensorflow
@pytest.mark.skipif(not HAS_TENSORFLOW, reason="tensorflow is not installed")
def test_keras_fast_path_feeds_a_multitask_model_the_plain_batches(splits):
    """Two heads' labels go through the untuned input pipeline as fit's arrays would: same numbers."""
    from harness.data import Splits
    from harness.suite.spec import ModelSpec
    from harness.paper.tasks.mtl import MtlOptions

    trunk = ModelSpec(name="small trunk", layers=[{"type": "flatten"}, {"type": "dense", "units": 32}])
    heads = MtlOptions.model_validate(load_suite("mtl", "smoke").options).heads()
    few = Splits(splits.x_train[:1030], splits.y_train[:1030], splits.x_val[:200], splits.y_val[:200],
                 splits.x_test, splits.y_test)
    backend = get_backend("tensorflow")

    def run(fast: bool):
        model = backend.build_multitask(trunk, heads, seed=0, device="cpu")
        fit = backend.fit_multitask(model, few, heads, [0.3, 0.7], TrainSettings(batch_size=BATCH, fast=fast),
                                    epochs=2, seed=0, device="cpu", observer=SilentObserver())
        return fit.path, [(head.train_loss, head.val_accuracy) for epoch in fit.history for head in epoch.heads]

    (fast_path, fast), (plain_path, plain) = run(True), run(False)
    assert fast_path.endswith("input not autotuned") and plain_path == "plain"
    assert fast == plain and len(fast) == 4
