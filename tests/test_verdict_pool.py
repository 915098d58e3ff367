"""Tests for harness.algorithms.verdict_pool: verdicts decided in worker processes, in order, and the same as here."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from harness.algorithms.separability import decide_cached
from harness.algorithms.verdict_pool import VerdictPool


def labelled_set(seed: int, overlap: bool) -> tuple[np.ndarray, np.ndarray]:
    """60 points in 6 dimensions split by a random direction; with ``overlap``, one positive point among the negatives."""
    rng = np.random.default_rng(seed)
    rows = rng.uniform(size=(60, 6))
    signs = np.where(rows @ rng.uniform(-1, 1, 6) > 0, 1.0, -1.0)
    if signs.min() == signs.max():
        signs[0] = -signs[0]
    if overlap:
        rows = np.vstack([rows, rows[signs > 0][:2].mean(axis=0)])
        signs = np.append(signs, -1.0)
    return rows, signs


def jobs(folder, built: list[int]):
    def arguments(seed: int):
        built.append(seed)
        return labelled_set(seed, overlap=seed % 2 == 1), {"time_limit": 30, "folder": folder / "pool"}
    return [(seed, lambda seed=seed: arguments(seed)) for seed in range(5)]


def test_verdicts_from_the_workers_are_those_decided_here(tmp_path):
    built: list[int] = []
    pool = VerdictPool(jobs(tmp_path, built), workers=2, ahead=2)
    assert built == [0, 1]  # only as many sets as are handed over are built
    got = {seed: pool.verdict(seed) for seed in (0, 3, 1, 2, 4)}  # in any order
    assert sorted(built) == [0, 1, 2, 3, 4] and pool.keys == []
    for seed, verdict in got.items():
        here = decide_cached(*labelled_set(seed, overlap=seed % 2 == 1), time_limit=30, folder=tmp_path / "here")
        assert (verdict.verdict, verdict.form) == (here.verdict, here.form)
        assert verdict.verdict == ("inseparable" if seed % 2 else "separable")
    with pytest.raises(KeyError, match="no separability job 7"):
        pool.verdict(7)


def test_a_dead_worker_does_not_fail_the_verdicts(tmp_path):
    pool = VerdictPool(jobs(tmp_path, []), workers=2, ahead=4)
    assert pool.verdict(0).verdict == "separable"  # the workers are up
    for process in list(pool._pool._processes.values()):
        os.kill(process.pid, signal.SIGKILL)
    # The jobs the dead workers held, and those not handed over yet, are decided in this process.
    assert [pool.verdict(seed).verdict for seed in (1, 2, 3, 4)] == ["inseparable", "separable", "inseparable",
                                                                    "separable"]
    assert pool._pool is None
