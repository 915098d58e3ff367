"""Task 6: the group mapping as suite data, the multi-task loss and training on both backends, the mtl suite."""

from __future__ import annotations

import csv
import importlib.util
import os

import numpy as np
import pytest

from harness.backends import get_backend
from harness.backends.base import SilentObserver
from harness.data import Splits
from harness.errors import UserError
from harness.suite.overrides import Override
from harness.suite.schema import TrainSettings
from harness.suite.spec import ModelSpec
from harness.tasks import load_suite
from harness.paper.tasks.mtl import MtlOptions, single_task_spec

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
# The same assertions on a GPU: HARNESS_TEST_DEVICE=cuda.
DEVICE = os.environ.get("HARNESS_TEST_DEVICE", "cpu")
BACKENDS = ["torch", pytest.param("tensorflow", marks=[
    pytest.mark.tensorflow, pytest.mark.skipif(not HAS_TENSORFLOW, reason="tensorflow is not installed")])]

TRUNK = ModelSpec(name="tiny trunk", layers=[
    {"type": "conv2d", "filters": 8, "kernel": 3, "stride": 2},
    {"type": "maxpool2d", "pool": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 32},
])


def options(**changes) -> MtlOptions:
    suite = load_suite("mtl", "smoke", [Override(f"options.{key}", value) for key, value in changes.items()])
    return MtlOptions.model_validate(suite.options)


def synthetic(count: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose brightest row band says the label, so both tasks are learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    images = rng.random((count, 28, 28, 1), dtype=np.float32) * 0.2
    rows = np.arange(28)[None, :] // 3 == labels[:, None]  # (count, 28): label k lights rows 3k..3k+2
    images[rows] += 0.7
    return images, labels.astype(np.int64)


def splits() -> Splits:
    images, labels = synthetic()
    return Splits(images[:160], labels[:160], images[160:200], labels[160:200], images[200:], labels[200:])


def test_the_suites_group_mapping_gives_each_label_its_group():
    loaded = options()
    assert list(loaded.groups) == ["unisex", "gendered", "shoes"]
    # T-shirt, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot
    assert loaded.group_of().tolist() == [0, 0, 0, 1, 0, 2, 1, 2, 1, 2]
    assert [head.classes for head in loaded.heads()] == [10, 3]


@pytest.mark.parametrize("groups, message", [
    ({"a": [0, 1, 2, 3, 4], "b": [5, 6, 7, 8]}, "options.groups: label 9 in no group"),
    ({"a": [0, 1, 2, 3, 4, 9], "b": [5, 6, 7, 8, 3]}, "label 3 is in group 'a' and in group 'b'"),
    ({"a": [0, 1, 2, 3, 4, 10], "b": [5, 6, 7, 8, 9]}, "group 'a': 10 is not a label 0..9"),
    ({"a": list(range(10))}, "task 2 needs at least 2 groups"),
    ({"a": list(range(10)), "b": []}, "group 'b' is empty"),
])
def test_a_bad_group_mapping_is_a_one_line_load_time_error(groups, message):
    with pytest.raises(UserError, match=message) as error:
        load_suite("mtl", "full", [Override("options.groups", groups)])
    assert "\n" not in str(error.value) and str(error.value).startswith("suite mtl: options.groups: ")


def test_bad_lambdas_and_trunks_are_load_time_errors():
    with pytest.raises(UserError, match=r"options.lambdas: each lambda must be in \[0, 1\], got \[1.5\]"):
        load_suite("mtl", "full", [Override("options.lambdas", [0.5, 1.5])])
    with pytest.raises(UserError, match="trunk must end in a flat vector"):
        load_suite("mtl", "full", [Override("options.trunk", [{"type": "conv2d", "filters": 4, "kernel": 3}])])


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(probabilities[np.arange(len(labels)), labels])))


@pytest.mark.parametrize("name", BACKENDS)
def test_the_multitask_loss_at_lambda_1_and_0_is_each_single_task_loss(name):
    backend = get_backend(name)
    heads = options().heads()
    model = backend.build_multitask(TRUNK, heads, seed=0, device=DEVICE)
    images, labels = synthetic(64)
    single = []
    for index, head in enumerate(heads):
        # The head as a single-task model (trunk + one softmax head, shared weights), its loss computed here.
        spec = single_task_spec(TRUNK, head.classes, f"head {index}")
        probabilities = backend.activations(backend.head_model(model, index), images, len(spec.layers) - 1,
                                            spec=spec, device=DEVICE)
        single.append(cross_entropy(probabilities, head.label_map[labels]))
    assert single[0] > 2.0 and single[1] > 0.9  # untrained: near log(10) and log(3)

    def loss(lam: float) -> float:
        return backend.multitask_loss(model, images, labels, heads, [lam, 1 - lam], device=DEVICE)

    assert loss(1.0) == pytest.approx(single[0], rel=1e-5)
    assert loss(0.0) == pytest.approx(single[1], rel=1e-5)
    assert loss(0.3) == pytest.approx(0.3 * single[0] + 0.7 * single[1], rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKENDS)
def test_training_at_lambda_1_or_0_leaves_the_other_head_untouched_and_learns_the_weighted_one(name):
    backend = get_backend(name)
    heads = options().heads()
    data = splits()
    last = len(TRUNK.layers)  # the head's index in its single-task spec
    for lam, trained, frozen in ((1.0, 0, 1), (0.0, 1, 0)):
        model = backend.build_multitask(TRUNK, heads, seed=1, device=DEVICE)
        specs = [single_task_spec(TRUNK, head.classes, "head") for head in heads]

        def kernel(index: int) -> np.ndarray:
            return backend.kernel(backend.head_model(model, index), last, spec=specs[index]).copy()

        before = [kernel(0), kernel(1)]
        settings = TrainSettings(batch_size=20, learning_rate=5e-3)
        fit = backend.fit_multitask(model, data, heads, [lam, 1 - lam], settings, epochs=4, seed=1, device=DEVICE,
                                    observer=SilentObserver())
        np.testing.assert_array_equal(kernel(frozen), before[frozen])
        assert not np.allclose(kernel(trained), before[trained])
        history = fit.history
        assert [epoch.epoch for epoch in history] == [1, 2, 3, 4]
        # The objective is the weighted head's own loss, and it fell.
        assert history[-1].train_loss == pytest.approx(history[-1].heads[trained].train_loss, rel=1e-4)
        assert history[-1].heads[trained].train_loss < history[0].heads[trained].train_loss
        predicted = backend.predict_multitask(model, data.x_test, device=DEVICE)
        assert [p.shape for p in predicted] == [(40,), (40,)]
        accuracy = np.mean(predicted[trained] == heads[trained].label_map[data.y_test])
        assert accuracy > 0.75, (name, lam, accuracy)  # chance: 10% (task 1), 40% (task 2's largest group)


@pytest.fixture(scope="session")
def fashion_mnist():
    from harness import data

    return data.load("fashion_mnist")


def rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_mtl_smoke_run_writes_both_tables_and_every_figure(reports, fashion_mnist, console):
    from harness import runner
    from harness.runner import RunRequest

    overrides = [Override("data.train_samples", 600), Override("data.test_samples", 300),
                 Override("options.lambdas", [0.0, 0.5, 1.0])]
    outcome = runner.run(RunRequest("mtl", "smoke", overrides=overrides, reports=reports), console)
    results = rows(outcome.folder / "results.csv")
    assert [(r["model"], r["lambda"]) for r in results] == [
        ("STL task 1", ""), ("STL task 2", ""), ("MTL", "0.0"), ("MTL", "0.5"), ("MTL", "1.0")]
    assert all(r["status"] == "ok" for r in results)
    table = rows(outcome.folder / "table_6_1.csv")
    assert [float(r["λ"]) for r in table] == [0.0, 0.5, 1.0]
    assert [r["Report task 1 %"] for r in table] == ["10.2", "90.14", "89.9"]
    comparison = rows(outcome.folder / "table_6_2.csv")
    assert [r["Task"] for r in comparison] == ["task 1 (classes)", "task 2 (groups)"]
    assert [r["Report STL %"] for r in comparison] == ["88.4", "92.8"]
    figures = {path.relative_to(outcome.folder / "cells").as_posix() for path in outcome.folder.glob("cells/*/*.png")}
    assert "model_STL_task_2__backend_torch__device_cpu__seed_0__914ccb31/confusion_task2.png" in figures
    assert "model_MTL__backend_torch__device_cpu__seed_0__lambda_0.5__a5146413/learning_curves.png" in figures
    assert len(figures) == 2 * 2 + 3 * 3  # STL: curves + confusion; MTL: curves + 2 confusions


@pytest.mark.slow
def test_every_mtl_row_gives_compare_one_timing_sample_per_epoch_and_is_judged_on_both_heads(reports, fashion_mnist,
                                                                                             console):
    from harness import runner
    from harness.compare import baselines
    from harness.runner import RunRequest
    from harness.store import ResultsStore
    from harness.thresholds import parse_thresholds

    overrides = [Override("data.train_samples", 300), Override("data.test_samples", 200), Override("train.epochs", 3),
                 Override("options.lambdas", [0.7])]
    outcome = runner.run(RunRequest("mtl", "smoke", overrides=overrides, reports=reports), console)
    with ResultsStore(reports / "results.db") as store:
        run = baselines.from_store(store, outcome.run.run_id)
    assert [cell.model for cell in run.cells] == ["STL task 1", "STL task 2", "MTL"]
    for cell in run.cells:  # the single-task CNNs too, not only the multi-task one
        assert len(cell.values("seconds_per_epoch")) == 3 and len(cell.values("train_seconds")) == 3
    judged = {threshold.metric for threshold in parse_thresholds(run.settings().fail)}
    assert judged == {"task1_test_accuracy", "task2_test_accuracy", "train_seconds"}
    assert all(cell.values("task1_test_accuracy") for cell in run.cells if cell.model != "STL task 2")
