"""What the tasks that train classifiers share: the suite's data split, training one model and
measuring it, accuracy and confusion, the spec's and the report's columns of a record.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness.backends.base import SilentObserver
from harness.backends.metrics import seconds_to_target
from harness.cells import StoredCell
from harness.suite.schema import DATASET_SIZES
from harness.tasks.base import CellWork

if TYPE_CHECKING:
    from harness.backends.base import Backend, TrainObserver
    from harness.data import Splits
    from harness.suite.schema import DataSettings, ModelEntry, Suite


@functools.lru_cache(maxsize=4)
def load_splits(dataset: str, validation_split: float, split_seed: int, train_samples: int | None,
                test_samples: int | None) -> "Splits":
    """The suite's data split, loaded once per process and shared by every cell that uses it."""
    from harness import data

    return data.split(data.load(dataset), validation_split=validation_split, seed=split_seed,
                      train_samples=train_samples, test_samples=test_samples)


def suite_splits(suite: "Suite") -> "Splits":
    return data_splits(suite.data)


def data_splits(settings: "DataSettings") -> "Splits":
    """The split a suite's ``[data]`` settings describe (loaded once per process)."""
    return load_splits(settings.dataset, settings.validation_split, settings.split_seed, settings.train_samples,
                       settings.test_samples)


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy in percent."""
    return 100.0 * float(np.mean(predicted == labels))


def confusion(predicted: np.ndarray, labels: np.ndarray, classes: int = 10) -> list[list[int]]:
    """Counts of (true, predicted) pairs: rows are true classes."""
    counts = np.bincount(labels * classes + predicted, minlength=classes * classes)
    return counts.reshape(classes, classes).tolist()


def spec_columns(model: "ModelEntry") -> dict[str, Any]:
    """The columns every table takes from the spec alone."""
    return {"params": model.params, "flops": model.flops, "depth": model.depth, "max_width": model.max_width,
            "widths": " ".join(str(w) for w in model.hidden_widths), "architecture": model.architecture}


def training_work(suite: "Suite", model: "ModelEntry", epochs: int) -> CellWork:
    """The work of training ``model`` for ``epochs`` with the suite's data and settings, then
    predicting the train and test sets (what :func:`train_and_measure` does)."""
    data = suite.data
    pool = data.train_samples or DATASET_SIZES[data.dataset]["train"]
    train = pool - round(data.validation_split * pool)  # the split's own rule (harness.data.split)
    validation = pool - train
    test = data.test_samples or DATASET_SIZES[data.dataset]["test"]
    forward = model.flops
    conv = sum(layer.flops(shape) for layer, shape in zip(model.layers, model.shapes()) if layer.type == "conv2d")
    repeats = suite.repeats
    return CellWork(
        epochs=epochs, train_samples=train, steps=math.ceil(train / suite.train.batch_size) * epochs * repeats,
        training_flops=3 * forward * train * epochs * repeats,
        evaluation_flops=forward * (validation * epochs * repeats + train + test),
        conv_share=conv / forward if forward else 0.0)


def reference_columns(model: "ModelEntry") -> dict[str, Any]:
    ref = model.reference
    return {"ref_params": ref.params, "ref_test_accuracy": ref.test_accuracy, "ref_train_accuracy": ref.train_accuracy,
            "ref_cpu_seconds": ref.cpu_seconds, "ref_gpu_seconds": ref.gpu_seconds}


def train_and_measure(
    backend: "Backend", model_spec: "ModelEntry", suite: "Suite", *, epochs: int, seed: int, device: str,
    observer: "TrainObserver", weights_dir: Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Build, check parity, train and evaluate one model; returns (record, artifacts, trained model).

    Shared by every task that trains a classifier (classification suites, architecture search).
    """
    splits = suite_splits(suite)
    model = backend.build(model_spec, seed=seed, device=device)
    built = backend.count_params(model)
    if built != model_spec.params:
        raise RuntimeError(
            f"parameter parity: {backend.name} built {built:,} parameters, the spec has {model_spec.params:,}"
        )
    fit = backend.fit(model, splits, suite.train, epochs=epochs, seed=seed, device=device, observer=observer)
    target = suite.train.target_accuracy
    fits = [fit]
    for _ in range(suite.repeats - 1):
        # Repeats retrain a fresh model with the same seed only to time it: a spread for compare's noise test.
        again = backend.build(model_spec, seed=seed, device=device)
        fits.append(backend.fit(again, splits, suite.train, epochs=epochs, seed=seed, device=device,
                                observer=SilentObserver()))
    seconds = [repeat.seconds for repeat in fits]
    to_target = [seconds_to_target(repeat.history, target) for repeat in fits]
    train_seconds = float(np.median(seconds))
    train_predicted = backend.predict(model, splits.x_train, device=device)
    test_predicted = backend.predict(model, splits.x_test, device=device)
    last = fit.history[-1]
    record = {
        **spec_columns(model_spec),
        "epochs": epochs,
        "train_samples": len(splits.y_train),
        "val_samples": len(splits.y_val),
        "test_samples": len(splits.y_test),
        "train_accuracy": accuracy(train_predicted, splits.y_train),
        "val_accuracy": None if last.val_accuracy is None else 100.0 * last.val_accuracy,
        "test_accuracy": accuracy(test_predicted, splits.y_test),
        "final_train_loss": last.train_loss,
        "final_val_loss": last.val_loss,
        "train_seconds": train_seconds,
        "seconds_per_epoch": train_seconds / epochs,
        "target_accuracy": target,
        # Time to accuracy (AlgoPerf): None when the target is unset or was not reached.
        "seconds_to_target": None if None in to_target else float(np.median(to_target)),
        "train_path": fit.path,
        "precision": suite.train.precision,
        "deterministic": suite.train.deterministic,
        **reference_columns(model_spec),
    }
    artifacts: dict[str, Any] = {
        "history": [metrics.as_dict() for metrics in fit.history],
        "confusion": confusion(test_predicted, splits.y_test),
        "backend_environment": backend.environment(device),
    }
    if len(seconds) > 1:
        artifacts["timings"] = {"train_seconds": seconds, "seconds_per_epoch": [t / epochs for t in seconds]}
        if None not in to_target:
            artifacts["timings"]["seconds_to_target"] = to_target
    if weights_dir is not None:
        artifacts["weights"] = str(backend.save(model, weights_dir))
    return record, artifacts, model


def class_names(suite: "Suite") -> list[str]:
    from harness.data import DATASETS

    return list(DATASETS[suite.data.dataset].class_names)


def finished_frame(cells: list[StoredCell]) -> pd.DataFrame:
    """The records of the cells that finished; failed cells have no measurements to tabulate."""
    return pd.DataFrame([stored.record for stored in cells if stored.result.ok])
