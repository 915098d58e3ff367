"""Reading a verified dataset: IDX files into arrays, and the train / validation / test split.

    >>> ds = load("mnist")            # fetches on first use, then reads the cache
    >>> s = split(ds, seed=0)         # 54,000 train / 6,000 validation / 10,000 test
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.data.fetch import (
    DataError,
    Log,
    data_dir,
    dataset_info,
    ensure_in,
    open_maybe_gz,
)

# --- reading --------------------------------------------------------------------------------------

_IDX_KINDS = {0x0801: 1, 0x0803: 3}  # magic -> number of dimensions; both hold unsigned bytes


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (raw or gzipped) of unsigned bytes: labels (N,) or images (N, rows, cols).

    Checks the magic number (0x0801 or 0x0803) and that the data is exactly as long as the header's
    dimensions say. The returned array is read-only: it wraps the file's bytes without a copy.
    """
    path = Path(path)
    try:
        with open_maybe_gz(path) as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: not an IDX file (only {len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in _IDX_KINDS:
        raise DataError(f"{path}: bad IDX magic 0x{magic:08x} (expected 0x00000801 or 0x00000803)")
    ndim = _IDX_KINDS[magic]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} of {header} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims))
    if len(raw) < expected:
        raise DataError(f"{path}: truncated: {len(raw)} bytes, shape {dims} needs {expected}")
    if len(raw) > expected:
        raise DataError(f"{path}: {len(raw) - expected} trailing bytes after shape {dims} data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


@dataclass(frozen=True)
class Dataset:
    """A dataset's arrays exactly as stored: uint8 pixels 0-255 and uint8 labels (read-only arrays)."""

    name: str
    train_images: np.ndarray
    """(N, 28, 28) uint8."""
    train_labels: np.ndarray
    """(N,) uint8."""
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]


def _check_pair(name: str, part: str, images: np.ndarray, labels: np.ndarray, classes: int) -> None:
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{name}: {part} images have shape {images.shape}, expected (N, 28, 28)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{name}: {len(images)} {part} images but labels of shape {labels.shape}")
    if len(labels) and int(labels.max()) >= classes:
        raise DataError(f"{name}: {part} label {int(labels.max())} out of range for {classes} classes")


@functools.lru_cache(maxsize=4)
def _load(name: str, folder: Path, log: Log) -> Dataset:
    info = dataset_info(name)
    ensure_in(info, folder, log)
    arrays = {file: read_idx(folder / file) for file in info.files}
    ds = Dataset(
        name=name,
        train_images=arrays["train-images-idx3-ubyte"],
        train_labels=arrays["train-labels-idx1-ubyte"],
        test_images=arrays["t10k-images-idx3-ubyte"],
        test_labels=arrays["t10k-labels-idx1-ubyte"],
        class_names=info.class_names,
    )
    _check_pair(name, "train", ds.train_images, ds.train_labels, len(info.class_names))
    _check_pair(name, "test", ds.test_images, ds.test_labels, len(info.class_names))
    return ds


#: Datasets handed to this process already read and verified (a Ray worker gets the driver's copy).
_PROVIDED: dict[str, Dataset] = {}


def provide(dataset: Dataset) -> None:
    """Make ``load(dataset.name)`` return ``dataset`` in this process, without reading the disk."""
    _PROVIDED[dataset.name] = dataset


def load(name: str, log: Log = print) -> Dataset:
    """``ensure`` then read ``name``. Cached in-process per (name, ``data_dir()``, log): repeats are free."""
    if name in _PROVIDED:
        return _PROVIDED[name]
    return _load(name, data_dir() / name, log)


# --- splitting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Splits:
    """Model-ready arrays: images float32 in [0, 1], shape (N, 28, 28, 1) (channels-last); labels int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _count(value: int | None, available: int, what: str) -> int:
    if value is None:
        return available
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataError(f"{what} must be an integer, got {value!r}")
    if not 1 <= value <= available:
        raise DataError(f"{what} must be between 1 and {available}, got {value}")
    return int(value)


def _scale(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) / np.float32(255.0))[..., np.newaxis]


def split(
    dataset: Dataset,
    *,
    validation_split: float = 0.1,
    seed: int = 0,
    train_samples: int | None = None,
    test_samples: int | None = None,
) -> Splits:
    """Split the training set into train and validation by a seeded permutation; scale all images.

    The pool is the first ``train_samples`` of ``np.random.default_rng(seed).permutation`` over the
    training set (all of it if None); its last ``round(validation_split * len(pool))`` samples are the
    validation set. The test set is never mixed in: ``test_samples`` takes its first N in file order.
    """
    if not isinstance(validation_split, (int, float)) or not 0 <= validation_split < 1:
        raise DataError(f"validation_split must be in [0, 1), got {validation_split!r}")
    n_pool = _count(train_samples, len(dataset.train_labels), "train_samples")
    n_test = _count(test_samples, len(dataset.test_labels), "test_samples")
    pool = np.random.default_rng(seed).permutation(len(dataset.train_labels))[:n_pool]
    n_train = n_pool - round(validation_split * n_pool)
    if n_train < 1:
        raise DataError(f"validation_split {validation_split} leaves no training samples out of {n_pool}")
    train, val = pool[:n_train], pool[n_train:]
    return Splits(
        x_train=_scale(dataset.train_images[train]),
        y_train=dataset.train_labels[train].astype(np.int64),
        x_val=_scale(dataset.train_images[val]),
        y_val=dataset.train_labels[val].astype(np.int64),
        x_test=_scale(dataset.test_images[:n_test]),
        y_test=dataset.test_labels[:n_test].astype(np.int64),
    )
