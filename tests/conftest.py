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


class StopAfter:
    """The local executor, stopped as by Ctrl-C after ``count`` cells (counted over its whole life, so
    a study's members count together): ``then`` (if given) runs, then KeyboardInterrupt is raised."""

    name = "local"

    def __init__(self, count, then=None):
        from harness.executors.local import LocalExecutor

        self.local, self.count, self.then, self.ran = LocalExecutor(), count, then, 0

    def start(self, cells):
        self.local.start(cells)

    def run(self, cells, context):
        for position, cell in cells:
            if self.ran == self.count:
                if self.then:
                    self.then()
                raise KeyboardInterrupt
            self.ran += 1
            yield from self.local.run([(position, cell)], context)


@pytest.fixture
def stop_after():
    """``stop_after(count, then=None)``: an executor that stops a run after ``count`` cells."""
    return StopAfter


@pytest.fixture
def fixed_calibration(monkeypatch):
    """The runner's machine calibration replaced by fixed 1 ms samples, for run tests that check something
    else: a real calibration times its workload for seconds per run and about half a second per cell."""
    from harness import calibration

    def fixed(device="cpu", samples=calibration.SAMPLES, **_):
        return calibration.describe({"version": calibration.VERSION, "device": device, "samples": [0.001] * samples})

    monkeypatch.setattr(calibration, "calibrate", fixed)


@pytest.fixture
def small_filesystem(tmp_path):
    """``small_filesystem(size)``: a folder on a tmpfs of ``size`` (e.g. "200k"), unmounted after the
    test; the test is skipped where none can be mounted (not root), and its stand-in covers the path."""
    import contextlib

    from benchmarks.storage_faults import small_filesystem as mount

    with contextlib.ExitStack() as stack:
        def make(size):
            folder = tmp_path / f"tmpfs-{size}"
            if not stack.enter_context(mount(folder, size)):
                pytest.skip("cannot mount a small tmpfs here (needs root)")
            return folder

        yield make
