"""The harness images: which exist (``cpu``, ``gpu``), their tags and recipes, and the checkout that builds them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError

LABEL = "org.harness.kind"
"""Label on every image and container the launcher makes: its kind, so leftovers can be found."""
BASE_IMAGE = "debian:bookworm-slim"
"""The Dockerfiles' default ``BASE_IMAGE``: pulled when missing, or made by scripts/bootstrap-base-image."""
IMAGE_PYTHON_TAG = "cp311"
"""The images' Python (Debian bookworm's 3.11): a wheel added to the build context must fit it."""


@dataclass(frozen=True)
class Flavour:
    """One image the launcher can build and run."""

    kind: str
    """``cpu`` or ``gpu``, as in ``container=``."""
    tag: str
    """The image's tag."""
    dockerfile: str
    """Its recipe, relative to the checkout."""
    gpu: bool
    """Whether containers get the host's GPUs (needs the NVIDIA container toolkit)."""


FLAVOURS = {
    "cpu": Flavour("cpu", "harness:cpu", "Dockerfile.cpu", gpu=False),
    "gpu": Flavour("gpu", "harness:gpu", "Dockerfile.gpu", gpu=True),
}


def flavour(kind: str) -> Flavour:
    """The flavour called ``kind``; a UserError names the valid ones."""
    try:
        return FLAVOURS[kind]
    except KeyError:
        raise UserError(f"container={kind!r}: allowed: {', '.join(FLAVOURS)}") from None


def checkout() -> Path | None:
    """The checkout holding the Dockerfiles: the one this harness runs from, else the working folder.

    The second covers a harness installed from a checkout without -e (as tox does), run inside it.
    None outside any checkout.
    """
    for root in (Path(__file__).resolve().parents[2], Path.cwd().resolve()):
        if (root / FLAVOURS["cpu"].dockerfile).is_file():
            return root
    return None
