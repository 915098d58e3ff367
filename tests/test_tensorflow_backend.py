"""The TensorFlow backend against the spec, the report, and the PyTorch backend.

The two backends must build the same model from a spec: same parameter count (the report's), the same
function of the input (checked by copying one backend's weights into the other), and the same shape of
results from a short fit. TensorFlow is imported once per session by the ``tf_backend`` fixture.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import harness.backends
from harness.backends import get_backend
from harness.backends.base import EpochMetrics, NonFiniteLoss, SilentObserver
from harness.data import Splits
from harness.errors import UserError
from harness.suite.schema import TrainSettings
from harness.suite.spec import ModelSpec
from harness.tasks import load_suite

ROOT = Path(__file__).resolve().parents[1]
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed: pip install 'harness[torch]'")

CLASSIFICATION_SUITES = ("mlp_baseline", "mlp_depth", "cnn_baseline", "cnn_depth", "mlp_vs_cnn")
# The report's parameter counts (tables 3.1, 4.1 and 4.3), written out here independently of the suites.
REPORT_PARAMS = sorted([
    1_796_010, 1_324_362, 1_861_578, 4_253_258, 3_405_418, 848_170, 3_165_482, 3_085_354, 4_458_314,  # MLPs
    185_066, 804_778, 579_178, 2_474_218, 2_414_954, 2_814_698, 903_114, 1_676_874, 5_255_786,  # CNNs
    795_010, 6_042,  # the one-layer bonus models
])
SOFTMAX_10 = {"type": "dense", "units": 10, "activation": "softmax"}


def report_models() -> list:
    """Every distinct model (by architecture) of the classification suites: the report's 20."""
    models = {}
    for name in CLASSIFICATION_SUITES:
        for model in load_suite(name).models:
            models.setdefault(model.architecture, model)
    return list(models.values())


def mlp(name: str, widths: list[int]) -> ModelSpec:
    hidden = [{"type": "dense", "units": width} for width in widths]
    return ModelSpec.model_validate({"name": name, "layers": [{"type": "flatten"}, *hidden, SOFTMAX_10]})


# A small model that uses every layer type, with a shape where a channels-first flatten would differ.
MIXED = ModelSpec.model_validate(
    {
        "name": "Mixed Model",
        "layers": [
            {"type": "conv2d", "filters": 6, "kernel": 3, "stride": 2, "activation": "linear"},
            {"type": "maxpool2d", "pool": 2},
            {"type": "activation", "function": "relu"},
            {"type": "conv2d", "filters": 5, "kernel": 3, "padding": "same", "activation": "tanh"},
            {"type": "flatten"},
            {"type": "dropout", "rate": 0.25},
            {"type": "dense", "units": 16, "activation": "sigmoid"},
            SOFTMAX_10,
        ],
    }
)


def synthetic_splits(train: int = 300, val: int = 60, test: int = 40, seed: int = 0) -> Splits:
    """Noise images in [0, 1] whose label is the brighter band of rows (2 rows per class): learnable fast."""
    rng = np.random.default_rng(seed)

    def part(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, count)
        images = rng.random((count, 28, 28, 1), dtype=np.float32) * 0.5
        rows = 2 * labels[:, None] + np.arange(2)  # (count, 2): the two rows of each image's band
        images[np.arange(count)[:, None], rows] += 0.5
        return images, labels.astype(np.int64)

    return Splits(*part(train), *part(val), *part(test))


@pytest.fixture(scope="session")
def tf_backend():
    if not HAS_TENSORFLOW:
        pytest.skip("tensorflow is not installed: pip install 'harness[tensorflow]'")
    return get_backend("tensorflow")


@pytest.fixture(scope="session")
def torch_backend():
    if not HAS_TORCH:
        pytest.skip("torch is not installed: pip install 'harness[torch]'")
    return get_backend("torch")


@pytest.fixture(scope="module")
def splits() -> Splits:
    return synthetic_splits()


class RecordingObserver:
    """Keeps every call, to check what a backend reports while it trains."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def start_epoch(self, epoch: int, batches: int) -> None:
        self.calls.append(("start", epoch, batches))

    def advance(self, batches: int = 1) -> None:
        self.calls.append(("advance", batches))

    def end_epoch(self, metrics: EpochMetrics) -> None:
        self.calls.append(("end", metrics.epoch))


def fit(backend, spec: ModelSpec, splits: Splits, *, seed: int = 0, epochs: int = 2, observer=None, **train):
    model = backend.build(spec, seed=seed, device="cpu")
    result = backend.fit(
        model, splits, TrainSettings(**train), epochs=epochs, seed=seed, device="cpu",
        observer=observer or SilentObserver(),
    )
    return model, result


# --- parity --------------------------------------------------------------------------------------


def test_the_suites_hold_the_reports_twenty_models():
    models = report_models()
    assert sorted(model.params for model in models) == REPORT_PARAMS
    assert all(model.reference.params == model.params for model in models)


@pytest.mark.slow
@pytest.mark.tensorflow
@needs_torch
def test_every_report_model_has_the_reports_parameter_count_on_both_backends(tf_backend, torch_backend):
    for model in report_models():
        keras_model = tf_backend.build(model, seed=0, device="cpu")
        torch_model = torch_backend.build(model, seed=0, device="cpu")
        built = (tf_backend.count_params(keras_model), torch_backend.count_params(torch_model))
        assert built == (model.reference.params, model.reference.params), model.name


@pytest.mark.tensorflow
@needs_torch
def test_both_backends_compute_the_same_function_from_the_same_weights(tf_backend, torch_backend):
    import torch

    from harness.backends.torch.model import images_on

    images = synthetic_splits(train=8).x_train
    torch_model = torch_backend.build(MIXED, seed=3, device="cpu").eval()
    keras_model = tf_backend.build(MIXED, seed=3, device="cpu")
    # Torch keeps (out, in, kh, kw) and (out, in); Keras (kh, kw, in, out) and (in, out).
    weights = []
    for tensor in torch_model.state_dict().values():
        array = tensor.numpy()
        weights.append(array.transpose(2, 3, 1, 0) if array.ndim == 4 else array.T if array.ndim == 2 else array)
    keras_model.set_weights(weights)
    with torch.no_grad():
        expected = torch.softmax(torch_model(images_on(images, "cpu")), dim=1).numpy()
    actual = np.asarray(keras_model(images, training=False))
    np.testing.assert_allclose(actual, expected, atol=1e-5)


@pytest.mark.slow
@pytest.mark.tensorflow
@needs_torch
def test_a_short_fit_gives_results_of_the_same_shape_on_both_backends(tf_backend, torch_backend, splits):
    results = {}
    for backend in (tf_backend, torch_backend):
        model, result = fit(backend, MIXED, splits)
        results[backend.name] = (backend.count_params(model), result, backend.predict(model, splits.x_test, device="cpu"))
    (tf_params, tf_fit, tf_pred), (torch_params, torch_fit, torch_pred) = results["tensorflow"], results["torch"]
    assert tf_params == torch_params == MIXED.params
    assert [m.epoch for m in tf_fit.history] == [m.epoch for m in torch_fit.history] == [1, 2]
    for metrics in tf_fit.history + torch_fit.history:
        for accuracy in (metrics.train_accuracy, metrics.val_accuracy):
            assert 0.0 <= accuracy <= 1.0
        assert np.isfinite(metrics.train_loss) and np.isfinite(metrics.val_loss)
        assert metrics.seconds > 0
    assert tf_fit.seconds >= sum(m.seconds for m in tf_fit.history) * 0.99
    assert tf_pred.shape == torch_pred.shape == (len(splits.y_test),)
    assert tf_pred.dtype == torch_pred.dtype == np.int64


# --- training ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.tensorflow
def test_fit_learns_and_reports_every_batch_to_the_observer(tf_backend, splits):
    observer = RecordingObserver()
    spec = mlp("Small MLP", [64])
    _, result = fit(tf_backend, spec, splits, epochs=3, observer=observer, fast=False)
    batches = len(splits.y_train) // 50
    per_epoch = lambda e: [("start", e, batches)] + [("advance", 1)] * batches + [("end", e)]  # noqa: E731
    assert observer.calls == per_epoch(1) + per_epoch(2) + per_epoch(3)
    # The fast path runs 32 steps per call: the batches arrive together, every one still counted.
    observer = RecordingObserver()
    fit(tf_backend, spec, splits, epochs=1, observer=observer)
    assert observer.calls == [("start", 1, batches), ("advance", batches), ("end", 1)]
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.history[-1].train_accuracy > 0.2  # ten classes: chance is 0.1


@pytest.mark.slow
@pytest.mark.tensorflow
def test_the_same_seed_repeats_a_cpu_run_exactly_and_another_seed_does_not(tf_backend, splits):
    histories = [fit(tf_backend, MIXED, splits, seed=seed)[1].history for seed in (7, 7, 8)]
    values = [[(m.train_loss, m.train_accuracy, m.val_loss, m.val_accuracy) for m in h] for h in histories]
    assert values[0] == values[1]
    assert values[0] != values[2]


@pytest.mark.slow
@pytest.mark.tensorflow
def test_op_determinism_repeats_a_fit_close_to_the_default_one_and_is_cleared_after(tf_backend, splits):
    from tensorflow.python.framework import config as tf_config

    class Seen(SilentObserver):
        def __init__(self):
            self.enabled = []

        def start_epoch(self, epoch, batches):
            self.enabled.append(tf_config.is_op_determinism_enabled())

    losses = []
    for deterministic in (False, True, True):
        observer = Seen()
        history = fit(tf_backend, MIXED, splits, seed=7, observer=observer, deterministic=deterministic)[1].history
        losses.append([m.train_loss for m in history])
        assert observer.enabled == [deterministic] * 2
        assert not tf_config.is_op_determinism_enabled()
    default, deterministic, again = losses
    assert deterministic == again
    # Some CPU kernels take another summation order under op determinism: the same training, other rounding.
    np.testing.assert_allclose(deterministic, default, rtol=1e-5)


@pytest.mark.tensorflow
def test_validation_is_skipped_when_the_split_has_none(tf_backend, splits):
    no_val = dataclasses.replace(splits, x_val=splits.x_val[:0], y_val=splits.y_val[:0])
    _, result = fit(tf_backend, mlp("Small MLP", [8]), no_val, epochs=1)
    assert result.history[0].val_loss is None and result.history[0].val_accuracy is None


@pytest.mark.slow
@pytest.mark.tensorflow
def test_a_non_finite_loss_stops_the_fit(tf_backend, splits):
    broken = dataclasses.replace(splits, x_train=np.full_like(splits.x_train, np.nan))
    with pytest.raises(NonFiniteLoss, match="epoch 1"):
        # No hidden layer: TF's ReLU turns NaN into 0 (torch's keeps it), which would hide the NaN input.
        fit(tf_backend, mlp("No hidden layer", []), broken)


# --- checkpoints ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.tensorflow
def test_save_and_load_give_the_same_predictions(tf_backend, splits, tmp_path):
    model, _ = fit(tf_backend, MIXED, splits, epochs=1)
    path = tf_backend.save(model, tmp_path)
    assert path.name.endswith(".keras") and path.parent == tmp_path
    loaded = tf_backend.load(MIXED, path, device="cpu")
    before = tf_backend.predict(model, splits.x_test, device="cpu", batch_size=16)
    np.testing.assert_array_equal(tf_backend.predict(loaded, splits.x_test, device="cpu"), before)


@pytest.mark.tensorflow
def test_a_checkpoint_of_another_model_or_no_checkpoint_is_a_user_error(tf_backend, tmp_path):
    path = tf_backend.save(tf_backend.build(mlp("Small MLP", [8]), seed=0, device="cpu"), tmp_path)
    with pytest.raises(UserError, match=r"does not fit model 'Wider MLP': weight array 1 is \(784, 8\) in the file, \(784, 9\)"):
        tf_backend.load(mlp("Wider MLP", [9]), path, device="cpu")
    with pytest.raises(UserError, match="holds 4 weight arrays, the model has 2"):
        tf_backend.load(mlp("No hidden layer", []), path, device="cpu")
    with pytest.raises(UserError, match="not found"):
        tf_backend.load(mlp("Small MLP", [8]), tmp_path / "missing.keras", device="cpu")
    (tmp_path / "junk.keras").write_text("not a zip")
    with pytest.raises(UserError, match="not a .keras file"):
        tf_backend.load(mlp("Small MLP", [8]), tmp_path / "junk.keras", device="cpu")


# --- devices, environment, imports ---------------------------------------------------------------


@pytest.mark.tensorflow
def test_devices_resolve_to_what_tensorflow_sees(tf_backend):
    import tensorflow as tf

    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    assert tf_backend.resolve_device("cpu") == "cpu"
    assert tf_backend.resolve_device("auto") == ("cuda" if has_gpu else "cpu")
    if not has_gpu:
        with pytest.raises(UserError, match="TensorFlow sees no GPU"):
            tf_backend.resolve_device("cuda")


@pytest.mark.tensorflow
def test_environment_names_versions_and_the_cores_in_use(tf_backend):
    import keras
    import tensorflow as tf

    from harness.threads import framework_threads as usable_cores

    info = tf_backend.environment("cpu")
    assert info["tensorflow"] == tf.__version__ and info["keras"] == keras.__version__
    assert info["tensorflow_threads"] == info["tensorflow_inter_op_threads"] == usable_cores()
    if "HARNESS_THREADS" not in os.environ:  # the variable overrides the count (tests run with it set)
        assert usable_cores() == len(os.sched_getaffinity(0))


def test_a_missing_tensorflow_names_the_extra_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real_find_spec(name, *a)
    )
    monkeypatch.setattr(harness.backends, "_instances", {})
    with pytest.raises(UserError, match=r"pip install 'harness\[tensorflow\]'"):
        get_backend("tensorflow")


@pytest.mark.slow
@needs_torch
def test_a_torch_run_never_imports_tensorflow():
    script = textwrap.dedent(
        """
        import sys
        import harness.backends.tensorflow  # the package alone must not load the framework
        from harness.backends import get_backend
        from harness.backends.base import SilentObserver
        from harness.suite.schema import TrainSettings
        sys.path.insert(0, "tests")
        from test_tensorflow_backend import MIXED, synthetic_splits

        torch_backend = get_backend("torch")
        model = torch_backend.build(MIXED, seed=0, device="cpu")
        torch_backend.fit(model, synthetic_splits(), TrainSettings(), epochs=1, seed=0, device="cpu",
                          observer=SilentObserver())
        print(sorted(name for name in ("tensorflow", "keras") if name in sys.modules))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
