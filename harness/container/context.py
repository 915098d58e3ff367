"""The build context of an image: the checkout filtered by ``.dockerignore``, plus files from the host.

Made here rather than by the SDK so that the host's files (its CA bundle, a CPU torch wheel, the
verified datasets) travel without being copied into the checkout.
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from harness.container.images import IMAGE_PYTHON_TAG, Flavour

EXTRA_CA_ARCNAME = "docker/certs/launcher-ca.crt"
"""Where the host's CA bundle goes in the build context (docker/install.sh trusts docker/certs/*)."""


def build_args(root: Path) -> dict[str, str]:
    """Build arguments: the checkout's commit, so results from the image still name their source."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"HARNESS_GIT_COMMIT": proc.stdout.strip()} if proc.returncode == 0 else {}


def context_extras(root: Path, chosen: Flavour) -> dict[str, Path]:
    """Files to add to the build context that the checkout does not hold: arcname -> host path.

    - The host's CA bundle (``$HARNESS_CA_CERT``, else ``$SSL_CERT_FILE``, else the system bundle):
      behind a TLS-intercepting proxy pip cannot verify the index without it, and elsewhere it only
      repeats public CAs, which the image build drops.
    - For the CPU image, a CPU torch wheel from pip's find-links when ``wheelhouse/`` has no torch:
      PyPI's torch is the CUDA build, and the CPU index may be unreachable.
    """
    extras: dict[str, Path] = {}
    candidates = [os.environ.get("HARNESS_CA_CERT"), os.environ.get("SSL_CERT_FILE"),
                  ssl.get_default_verify_paths().cafile, "/etc/ssl/certs/ca-certificates.crt"]
    ca = next((Path(path) for path in candidates if path and Path(path).is_file()), None)
    if ca is not None:
        extras[EXTRA_CA_ARCNAME] = ca
    if not chosen.gpu and not any((root / "wheelhouse").glob("torch-*.whl")):
        for wheel in cpu_torch_wheels(find_links_dirs()):
            extras[f"wheelhouse/{wheel.name}"] = wheel
    return extras


def find_links_dirs() -> list[Path]:
    """Local folders pip is configured to take wheels from (``PIP_FIND_LINKS``, ``pip config``)."""
    values = os.environ.get("PIP_FIND_LINKS", "").split()
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                              timeout=30)
        for line in proc.stdout.splitlines():
            key, _, value = line.partition("=")
            if key.endswith("find-links"):
                values += value.strip().strip("'\"").split()
    except (OSError, subprocess.SubprocessError):
        pass
    folders = [Path(value.removeprefix("file://")) for value in values if "://" not in value.removeprefix("file://")]
    return [folder for folder in dict.fromkeys(folders) if folder.is_dir()]


def cpu_torch_wheels(folders: Iterable[Path]) -> list[Path]:
    """CPU torch wheels for the image's Python on x86-64 Linux in ``folders``, one per file name."""
    pattern = re.compile(rf"^torch-[^-]+\+cpu-{IMAGE_PYTHON_TAG}-{IMAGE_PYTHON_TAG}-\S*linux\S*_x86_64\.whl$")
    found: dict[str, Path] = {}
    for folder in folders:
        for wheel in sorted(folder.glob("torch-*.whl")):
            if pattern.match(wheel.name):
                found.setdefault(wheel.name, wheel)
    return list(found.values())


def dockerignore_patterns(root: Path) -> list[str]:
    """The checkout's ``.dockerignore`` patterns (comments and blank lines dropped)."""
    path = root / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def write_build_context(root: Path, dockerfile: str, extras: dict[str, Path], out: IO[bytes]) -> None:
    """Write the build context to ``out`` as a tar: ``root`` filtered by ``.dockerignore``, plus ``extras``."""
    from docker.utils.build import exclude_paths

    names = sorted(exclude_paths(str(root), dockerignore_patterns(root), dockerfile=dockerfile))
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name in names:
            if name in extras:
                continue  # the extra of the same name wins
            tar.add(root / name, arcname=name, recursive=False)
        for arcname, path in extras.items():
            path = path.resolve()  # the file, not a link to it (/usr/lib/ssl/cert.pem is one)
            info = tar.gettarinfo(str(path), arcname=arcname)
            # A fixed owner and mode: whoever runs the launcher, the same bytes make the same layer.
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
