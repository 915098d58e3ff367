"""Tests for harness.paper.algorithms.verdict_pool: verdicts decided in worker processes, in order, and the same as here."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from harness.paper.algorithms.separability import decide_cached
from harness.paper.algorithms.verdict_pool import HeadStart, VerdictPool


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


def pair_images() -> tuple[np.ndarray, np.ndarray]:
    """Six classes of 6-pixel images: 0 and 1 apart, 2 sharing a point with 0, 3-5 anywhere (picklable: a
    worker loads it)."""
    rng = np.random.default_rng(5)
    images = np.vstack([rng.uniform(0.0, 0.4, (30, 6)), rng.uniform(0.6, 1.0, (30, 6)), rng.uniform(0.0, 0.4, (30, 6)),
                        rng.uniform(0.0, 1.0, (90, 6))])
    images[60] = images[:2].mean(axis=0)  # a point of both hulls of 0 and 2
    return images.astype(np.float32), np.repeat(np.arange(6), 30)


def test_routes_worked_out_ahead_are_those_worked_out_here(tmp_path, monkeypatch):
    from harness.paper.algorithms.perceptron import pair_data
    from harness.paper.algorithms.separability import logistic_route

    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))  # the workers look for cached verdicts there
    start = HeadStart(pair_images, [(0, 1), (0, 2)], workers=1, time_limit=30)
    routes = {pair: start.route(pair) for pair in [(0, 2), (0, 1)]}
    for pair, route in routes.items():
        here = logistic_route(*pair_data(*pair_images(), pair), time_limit=30)
        assert (route.answer, route.form, route.certificate) == (here.answer, here.form, here.certificate)
        assert np.array_equal(route.margins, here.margins)
    assert [routes[(0, 1)].answer, routes[(0, 2)].answer] == ["separable", "inseparable"]
    assert start.route((1, 2)) is None  # never asked for


def test_a_stopped_head_start_gives_only_the_routes_a_worker_took(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))
    pairs = [(0, 1), (0, 2), *((a, b) for a in range(1, 6) for b in range(a + 1, 6))]
    start = HeadStart(pair_images, pairs, workers=1, time_limit=30)
    start.stop()  # before the worker is even up: it takes only the few jobs already queued for it
    taken = [start.route(pair) for pair in pairs]
    assert taken[-1] is None and taken.count(None) >= len(pairs) - 4  # dropped: their verdicts work them out
    assert all(route is None or route.answer == answer for route, answer in zip(taken, ["separable", "inseparable"]))


def test_stopping_ends_the_workers_at_once(tmp_path, monkeypatch):
    # What Ctrl-C does while a cell waits for its verdict, or while the perceptrons train.
    pool = VerdictPool(jobs(tmp_path, []), workers=2, ahead=4)
    assert pool.verdict(0).verdict == "separable"  # the workers are up
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))
    start = HeadStart(pair_images, [(0, 1), (0, 2)], workers=1, time_limit=30)
    assert start.route((0, 1)).answer == "separable"
    processes = [*pool._pool._processes.values(), *start._pool._processes.values()]
    pool.close(stop=True)
    start.stop(now=True)
    for process in processes:
        process.join(timeout=10)
    assert not any(process.is_alive() for process in processes)
    assert pool.keys == [] and start.route((0, 2)) is None
