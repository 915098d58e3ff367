"""Shared fixtures: an isolated reports folder, and the real MNIST data (fetched once, then cached)."""

from __future__ import annotations

import pytest


@pytest.fixture
def reports(tmp_path, monkeypatch):
    """A fresh reports folder for one test (and HARNESS_REPORTS pointing at it)."""
    folder = tmp_path / "reports"
    monkeypatch.setenv("HARNESS_REPORTS", str(folder))
    return folder


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST dataset, from the cache or fetched and verified on first use."""
    from harness import data

    return data.load("mnist")


@pytest.fixture
def console():
    """A rich console writing into a string buffer at a fixed width (no terminal codes)."""
    import io

    from rich.console import Console

    return Console(file=io.StringIO(), width=120, force_terminal=False, color_system=None)
