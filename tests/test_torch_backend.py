"""The PyTorch backend: parity with the spec, Keras semantics, repeatable training, safe checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.backends import get_backend
from harness.backends.base import SilentObserver
from harness.data import Splits
from harness.errors import UserError
from harness.suite.schema import TrainSettings
from tests.test_spec import report_models


@pytest.fixture(scope="module")
def backend():
    return get_backend("torch")


def tiny_splits(n=300, seed=0):
    """Two separable blobs of 'images': class = whether the top half is brighter."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.random((n, 28, 28, 1), dtype=np.float32) * 0.5
    x[y == 1, :14] += 0.5
    return Splits(x[: n - 50], y[: n - 50].astype(np.int64), x[n - 50 : n - 25], y[n - 50 : n - 25].astype(np.int64),
                  x[n - 25 :], y[n - 25 :].astype(np.int64))


def test_built_parameter_counts_equal_the_spec_for_all_report_models(backend):
    for model in report_models():
        assert backend.count_params(backend.build(model, seed=0, device="cpu")) == model.params, model.name


def test_keras_initialisation_and_channels_last_flatten(backend):
    model = backend.build(report_models()[0], seed=0, device="cpu")
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][0]
    limit = np.sqrt(6 / (784 + 1000))  # Glorot uniform
    assert float(linear.weight.abs().max()) <= limit and float(linear.bias.abs().max()) == 0.0
    cnn = [m for m in report_models() if m.name == "CNN Baseline Model"][0]
    net = backend.build(cnn, seed=0, device="cpu")
    features = net[:-1](torch.zeros(1, 1, 28, 28).normal_())  # everything before the output layer
    assert features.shape == (1, 2048)


def test_training_learns_and_is_repeatable_on_cpu(backend):
    spec = report_models()[0]
    settings = TrainSettings(epochs=2, batch_size=50)
    runs = []
    for _ in range(2):
        model = backend.build(spec, seed=3, device="cpu")
        fit = backend.fit(model, tiny_splits(), settings, epochs=2, seed=3, device="cpu", observer=SilentObserver())
        runs.append((fit, backend.predict(model, tiny_splits().x_test, device="cpu")))
    (first, predicted), (second, _) = runs
    assert [h.train_loss for h in first.history] == [h.train_loss for h in second.history]
    assert len(first.history) == 2 and first.history[-1].val_accuracy > 0.9
    assert predicted.dtype == np.int64 and predicted.shape == (25,)


class DeterminismSeen(SilentObserver):
    """Notes, at each epoch's start, whether PyTorch runs deterministic algorithms."""

    def __init__(self):
        self.seen = []

    def start_epoch(self, epoch, batches):
        self.seen.append((torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark))


def test_deterministic_training_on_cpu_trains_as_the_default_and_leaves_torch_as_it_was(backend):
    spec = report_models()[0]
    fits = {}
    for deterministic in (False, True):
        observer = DeterminismSeen()
        model = backend.build(spec, seed=2, device="cpu")
        fits[deterministic] = backend.fit(model, tiny_splits(), TrainSettings(deterministic=deterministic), epochs=2,
                                          seed=2, device="cpu", observer=observer)
        assert observer.seen == [(deterministic, False)] * 2
    # CPU kernels are deterministic already: the setting changes no number there.
    assert [h.train_loss for h in fits[True].history] == [h.train_loss for h in fits[False].history]
    assert not torch.are_deterministic_algorithms_enabled()


def test_save_and_load_round_trip_and_mismatch(backend, tmp_path):
    specs = report_models()
    model = backend.build(specs[0], seed=0, device="cpu")
    path = backend.save(model, tmp_path)
    images = tiny_splits().x_test
    loaded = backend.load(specs[0], path, device="cpu")
    assert np.array_equal(backend.predict(model, images, device="cpu"), backend.predict(loaded, images, device="cpu"))
    with pytest.raises(UserError, match=f"checkpoint {path} does not fit model"):
        backend.load(specs[1], path, device="cpu")
    with pytest.raises(UserError, match="not found"):
        backend.load(specs[0], tmp_path / "missing.pt", device="cpu")


def test_cuda_asked_without_a_gpu_is_a_user_error(backend):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(UserError, match="device 'cuda' asked for, but PyTorch sees no CUDA GPU"):
        backend.resolve_device("cuda")
    assert backend.resolve_device("auto") == "cpu"


@pytest.mark.cuda
def test_cuda_training_runs():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    backend = get_backend("torch")
    spec = report_models()[0]
    model = backend.build(spec, seed=0, device="cuda")
    fit = backend.fit(model, tiny_splits(), TrainSettings(epochs=3), epochs=3, seed=0, device="cuda",
                      observer=SilentObserver())
    assert fit.history[-1].val_accuracy > 0.9  # 1.0 on CPU with the same seed


@pytest.mark.cuda
def test_deterministic_cuda_training_repeats_bit_for_bit_through_the_cuda_graph():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    backend = get_backend("torch")
    spec = [m for m in report_models() if m.name == "CNN Baseline Model"][0]  # cuDNN's backward passes
    splits = tiny_splits(n=1050)  # 20 batches an epoch: warm-up, capture and replays
    runs = []
    for _ in range(2):
        model = backend.build(spec, seed=0, device="cuda")
        fit = backend.fit(model, splits, TrainSettings(deterministic=True), epochs=2, seed=0, device="cuda",
                          observer=SilentObserver())
        runs.append((fit, [p.detach().cpu() for p in model.parameters()]))
    (first, first_weights), (second, second_weights) = runs
    assert first.path.endswith("CUDA graph")
    assert [(h.train_loss, h.val_loss) for h in first.history] == [(h.train_loss, h.val_loss) for h in second.history]
    assert all(torch.equal(a, b) for a, b in zip(first_weights, second_weights))


@pytest.mark.cuda
@pytest.mark.parametrize("precision, path_end", [("bf16", "CUDA graph"),
                                                 ("fp16", "(no CUDA graph: fp16's gradient scaler runs eagerly)")])
def test_mixed_precision_cuda_training_learns_on_the_path_the_docs_name(precision, path_end):
    # bf16 keeps the CUDA graph; fp16's gradient scaler runs its steps eagerly (docs/backends.md, Precision).
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    backend = get_backend("torch")
    spec = [m for m in report_models() if m.name == "CNN Baseline Model"][0]
    model = backend.build(spec, seed=0, device="cuda")
    fit = backend.fit(model, tiny_splits(n=1050), TrainSettings(precision=precision), epochs=3, seed=0,
                      device="cuda", observer=SilentObserver())
    assert fit.path.endswith(path_end), fit.path
    assert all(np.isfinite(h.train_loss) for h in fit.history)
    assert fit.history[-1].val_accuracy > 0.9  # two separable classes, as test_cuda_training_runs
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay float32


def test_thread_count_follows_harness_threads(monkeypatch):
    from harness.threads import framework_threads

    monkeypatch.setenv("HARNESS_THREADS", "1")
    assert framework_threads() == 1
    monkeypatch.setenv("HARNESS_THREADS", "many")
    with pytest.raises(UserError, match="HARNESS_THREADS='many': expected a positive integer"):
        framework_threads()
