"""Task 5: activations, kernels and gradient ascent on both backends; stored models; the visualize suite."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from harness import checkpoints
from harness.backends import get_backend
from harness.cells import Cell, CellResult
from harness.errors import UserError
from harness.store import ResultsStore, RunInfo, now, write_run_files
from harness.suite.overrides import Override
from harness.suite.spec import ModelSpec
from harness.tasks import load_suite
from harness.paper.tasks.visualize import TASK as VISUALIZE

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
# The same assertions on a GPU: HARNESS_TEST_DEVICE=cuda.
DEVICE = os.environ.get("HARNESS_TEST_DEVICE", "cpu")
BACKENDS = ["torch", pytest.param("tensorflow", marks=[
    pytest.mark.tensorflow, pytest.mark.skipif(not HAS_TENSORFLOW, reason="tensorflow is not installed")])]

SMALL_CNN = ModelSpec(name="small CNN", layers=[
    {"type": "conv2d", "filters": 6, "kernel": 3},
    {"type": "conv2d", "filters": 8, "kernel": 3, "stride": 2},
    {"type": "maxpool2d", "pool": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 10, "activation": "softmax"},
])


def baseline() -> ModelSpec:
    return load_suite("visualize").models[0]


def noise(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, (count, 28, 28, 1)).astype(np.float32)


@pytest.mark.parametrize("name", BACKENDS)
def test_every_layers_activations_have_the_shape_the_spec_infers(name):
    backend = get_backend(name)
    spec = baseline()
    model = backend.build(spec, seed=0, device=DEVICE)
    images = noise(3)
    for index, shape in enumerate(spec.shapes()[1:]):
        assert backend.activations(model, images, index, spec=spec, device=DEVICE).shape == (3, *shape), index
    probabilities = backend.activations(model, images, len(spec.layers) - 1, spec=spec, device=DEVICE)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)  # the output softmax is applied
    assert [backend.kernel(model, i, spec=spec).shape for i in (0, 1, 2, 4)] == [
        (4, 4, 1, 32), (4, 4, 32, 64), (4, 4, 64, 128), (2048, 10)]
    with pytest.raises(ValueError, match="no kernel"):
        backend.kernel(model, 3, spec=spec)


@pytest.mark.parametrize("name", BACKENDS)
def test_gradient_ascent_increases_each_filters_mean_activation(name):
    backend = get_backend(name)
    model = backend.build(SMALL_CNN, seed=1, device=DEVICE)
    for layer, filters in ((0, 6), (1, 8)):
        start = noise(filters, seed=layer)
        images, objective = backend.ascend(model, start, layer, spec=SMALL_CNN, filter_index=np.arange(filters),
                                           steps=15, step_size=0.5, device=DEVICE)
        assert images.shape == start.shape and objective.shape == (16, filters)
        # A ReLU filter silent on the whole start image has no gradient: it stays exactly where it was.
        alive = objective[0] > 0
        assert alive.sum() >= filters // 2
        assert np.all(objective[-1][alive] > objective[0][alive] + 0.01), (layer, objective[[0, -1]])
        np.testing.assert_array_equal(images[~alive], start[~alive])
        # The objective is what it says: each image's own filter's mean activation.
        maps = backend.activations(model, images, layer, spec=SMALL_CNN, device=DEVICE)
        np.testing.assert_allclose(objective[-1], maps[np.arange(filters), ..., np.arange(filters)].mean(axis=(1, 2)),
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", BACKENDS)
def test_deep_dream_increases_the_layers_mean_squared_activation_by_normalised_steps(name):
    backend = get_backend(name)
    model = backend.build(SMALL_CNN, seed=1, device=DEVICE)
    start = noise(2)
    images, objective = backend.ascend(model, start, 1, spec=SMALL_CNN, filter_index=None, steps=10, step_size=0.2,
                                       device=DEVICE)
    assert np.all(np.diff(objective, axis=0) > 0) and np.all(objective[-1] > 1.3 * objective[0])
    maps = backend.activations(model, images, 1, spec=SMALL_CNN, device=DEVICE)
    np.testing.assert_allclose(objective[-1], (maps ** 2).mean(axis=(1, 2, 3)), rtol=1e-4)
    # Each step moves each image by exactly step_size (L2), whatever the gradient's scale.
    one_step, _ = backend.ascend(model, start, 1, spec=SMALL_CNN, filter_index=None, steps=1, step_size=0.2,
                                 device=DEVICE)
    np.testing.assert_allclose(np.linalg.norm((one_step - start).reshape(2, -1), axis=1), 0.2, rtol=1e-4)


@pytest.mark.tensorflow
@pytest.mark.skipif(not HAS_TENSORFLOW, reason="tensorflow is not installed")
def test_both_backends_give_the_same_activations_kernels_and_ascent_from_the_same_weights():
    torch_backend, tf_backend = get_backend("torch"), get_backend("tensorflow")
    torch_model = torch_backend.build(SMALL_CNN, seed=3, device=DEVICE)
    keras_model = tf_backend.build(SMALL_CNN, seed=3, device=DEVICE)
    # Kernels in Keras' layout from the torch model, biases as they are.
    keras_model.set_weights([torch_backend.kernel(torch_model, i, spec=SMALL_CNN) if array.ndim > 1 else array.numpy()
                             for i, array in zip((0, 0, 1, 1, 4, 4), torch_model.state_dict().values())])
    images = noise(4)
    for index in range(len(SMALL_CNN.layers)):
        np.testing.assert_allclose(tf_backend.activations(keras_model, images, index, spec=SMALL_CNN, device=DEVICE),
                                   torch_backend.activations(torch_model, images, index, spec=SMALL_CNN, device=DEVICE),
                                   atol=1e-5)
    runs = [backend.ascend(model, images, 1, spec=SMALL_CNN, filter_index=[0, 1, 2, 3], steps=5, step_size=0.3,
                           device=DEVICE)
            for backend, model in ((torch_backend, torch_model), (tf_backend, keras_model))]
    np.testing.assert_allclose(runs[0][0], runs[1][0], atol=1e-4)
    np.testing.assert_allclose(runs[0][1], runs[1][1], atol=1e-4)


# --- stored models -----------------------------------------------------------------------------------


def store_classify_run(reports, *, weights: str | None, spec_name: str = "CNN Baseline Model") -> str:
    """A finished cnn_baseline run in ``reports`` (store and run folder) whose one torch cell recorded ``weights``."""
    suite = load_suite("cnn_baseline", "smoke")
    run = RunInfo("run-1", suite.name, suite.profile, suite.config_hash, now(), now(), "complete", suite.resolved(), {})
    cell = Cell(suite.name, "classify", spec_name, "torch", "cpu", 0, suite.resolved())
    artifacts = {} if weights is None else {"weights": weights}
    with ResultsStore(reports / "results.db") as store:
        store.create_run(run)
        store.save_cell(run.run_id, 0, cell, CellResult("ok", {"epochs": 1, "test_accuracy": 90.0}, artifacts))
        write_run_files(run.folder(reports), run, store.cells(run.run_id), ("model",))
    return run.run_id


def visualize_with(run_id: str):
    return load_suite("visualize", "smoke", [Override("options.from_run", run_id)])


def test_from_run_with_a_missing_checkpoint_is_a_user_error_before_anything_runs(reports):
    run_id = store_classify_run(reports, weights=str(reports / "cnn_baseline/run-1/cells/gone/weights.pt"))
    with pytest.raises(UserError, match=r"checkpoint .*weights\.pt not found"):
        VISUALIZE.check(visualize_with(run_id), reports)


def test_from_run_names_what_is_missing(reports):
    run_id = store_classify_run(reports, weights=None)
    with pytest.raises(UserError, match="without keeping its weights; .*options.save_weights=true"):
        VISUALIZE.check(visualize_with(run_id), reports)
    with pytest.raises(UserError, match="from_run=nope: no run 'nope' in .*results.db"):
        VISUALIZE.check(visualize_with("nope"), reports)


def test_from_run_loads_the_saved_weights_and_a_mismatched_file_is_a_user_error(reports):
    backend = get_backend("torch")
    trained = backend.build(baseline(), seed=5, device=DEVICE)
    folder = reports / "cnn_baseline" / "run-1" / "cells" / "model_CNN_Baseline_Model"
    folder.mkdir(parents=True)
    run_id = store_classify_run(reports, weights=str(backend.save(trained, folder)))
    VISUALIZE.check(visualize_with(run_id), reports)  # everything is there, for torch
    tensorflow_too = load_suite("visualize", "smoke", [Override("options.from_run", run_id),
                                                        Override("matrix.backends", ["torch", "tensorflow"])])
    with pytest.raises(UserError, match="no finished cell of 'CNN Baseline Model' on backend tensorflow; "
                                        r"the run trained: CNN Baseline Model \(torch\)"):
        VISUALIZE.check(tensorflow_too, reports)
    stored = checkpoints.find(run_id, "CNN Baseline Model", "torch", reports=reports)
    assert stored.spec.params == 185066 and stored.record["test_accuracy"] == 90.0
    loaded = checkpoints.load(stored, backend, device=DEVICE)
    images = noise(5)
    np.testing.assert_array_equal(backend.activations(loaded, images, 2, spec=stored.spec, device=DEVICE),
                                  backend.activations(trained, images, 2, spec=stored.spec, device=DEVICE))
    # The same file for another spec: the backend refuses it by name.
    other = stored.spec.model_copy(update={"layers": SMALL_CNN.layers})
    with pytest.raises(UserError, match="does not fit model"):
        backend.load(other, stored.weights, device=DEVICE)
    # A run folder works as well as a run id, even after the reports folder moved.
    moved = reports.parent / "moved"
    (reports).rename(moved)
    found = checkpoints.find(str(moved / "cnn_baseline" / "run-1"), "CNN Baseline Model", "torch", reports=moved)
    assert found.weights == moved / "cnn_baseline/run-1/cells/model_CNN_Baseline_Model/weights.pt"


def test_bad_visualize_options_are_load_time_errors():
    with pytest.raises(UserError, match=r"options.digits: .*labels 0..9"):
        load_suite("visualize", "smoke", [Override("options.digits", [2, 12])])
    with pytest.raises(UserError, match="unknown key 'options.ascent_stepz'"):
        load_suite("visualize", "smoke", [Override("options.ascent_stepz", 3)])


@pytest.mark.slow
def test_visualize_smoke_run_writes_every_figure_and_the_ascents_climb(reports, mnist, console):
    from harness import runner
    from harness.runner import RunRequest

    overrides = [Override("data.train_samples", 600), Override("data.test_samples", 200),
                 Override("options.ascent_steps", 5), Override("options.dream_steps", 5),
                 Override("options.ascent_filters", 4), Override("options.weight_channels", "all")]
    outcome = runner.run(RunRequest("visualize", "smoke", overrides=overrides, reports=reports), console)
    [cell] = json.loads((outcome.folder / "results.json").read_text())["cells"]
    assert cell["status"] == "ok" and cell["record"]["source"] == "trained here"
    for layer in (1, 2, 3):
        assert cell["record"][f"conv{layer}_ascent_end"] > cell["record"][f"conv{layer}_ascent_start"]
        assert cell["record"][f"conv{layer}_dream_end"] > cell["record"][f"conv{layer}_dream_start"]
    folder = outcome.folder / cell["artifacts"]["inspection"].rsplit("/", 1)[0]
    expected = {"deep_dream.png", "weights_conv2_all_channels.png", "weights_conv3_all_channels.png"}
    expected |= {f"{kind}_conv{n}.png" for kind in ("weights", "filters", "feature_maps_2", "feature_maps_9")
                 for n in (1, 2, 3)}
    assert expected <= {path.name for path in folder.glob("*.png")}
    with np.load(folder / "inspection.npz") as arrays:
        assert arrays["maps_2"].shape == (2, 11, 11, 64) and arrays["ascent_3"].shape == (4, 28, 28, 1)
        assert list(arrays["digits"]) == [2, 9]
    assert "conv 3: Conv(128,4,2)" in (outcome.folder / "table.md").read_text()
