"""Separability verdicts of many sets, decided in worker processes while their reader waits for each in turn.

A perceptron cell asks for one verdict per digit pair, one pair after another. Each is a few seconds
of single-threaded work (logistic regression, then HiGHS), and HiGHS holds Python's GIL while it
solves, so threads would only take turns: the verdicts are decided in ``workers`` processes instead,
in the order the cell will ask for them, each worker on one BLAS thread. The cell then waits only for
each verdict in turn, usually already there. The cell starts the pool and closes it before it ends.

Only a few sets are handed over at a time (``ahead`` beyond the one being waited for), so a 45-pair
cell holds a handful of 12,000-image pairs in memory rather than all of them. Workers are spawned, not
forked: the parent has torch's thread pools running, which a forked child must not inherit.

A worker that dies (killed, out of memory) does not fail the cell: a verdict the pool cannot give is
decided in this process instead. Ctrl-C while the cell waits stops the workers at once.

Before any of that, while the perceptrons train (on one thread), a :class:`HeadStart` works out the
part of each verdict that needs no perceptron, the logistic route, on the cores the training leaves
idle; the verdicts then start from it.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from harness.paper.algorithms.separability import (LogisticRoute, SeparabilityVerdict, cache_dir, data_hash,
                                                   decide_cached, logistic_route)
from harness.threads import blas_threads

#: What a job is: its key, and a function giving ``decide_cached``'s arguments (built only when it is handed over).
Job = tuple[Hashable, Callable[[], tuple[tuple, dict[str, Any]]]]


def _decide_in_worker(args: tuple, kwargs: dict[str, Any]) -> SeparabilityVerdict:
    with blas_threads(1):  # one BLAS thread per worker: the workers are the parallelism
        return decide_cached(*args, **kwargs)


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group; the parent stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class VerdictPool:
    """Decides ``jobs`` in order in ``workers`` processes; :meth:`verdict` hands out each one's result."""

    def __init__(self, jobs: Sequence[Job], workers: int, ahead: int | None = None) -> None:
        self._waiting = list(jobs)
        self._futures: dict[Hashable, Future] = {}
        self._arguments: dict[Hashable, tuple[tuple, dict[str, Any]]] = {}
        self._ahead = max(1, ahead if ahead is not None else 2 * workers)
        self.workers = workers
        self._closed: ProcessPoolExecutor | None = None
        self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_interrupts)
        self._fill()

    @property
    def keys(self) -> list[Hashable]:
        """The jobs whose verdicts are still to be handed out."""
        return [*self._futures, *(key for key, _ in self._waiting)]

    def verdict(self, key: Hashable) -> SeparabilityVerdict:
        """The verdict of job ``key``, decided in a worker (or here, if the pool is gone)."""
        while key not in self._futures and self._pool is not None and self._waiting:
            self._hand_over_next()
        if key in self._futures:
            future, (args, kwargs) = self._futures.pop(key), self._arguments.pop(key)
            try:
                verdict = future.result()
            except (KeyboardInterrupt, SystemExit):
                self.close(stop=True)
                raise
            except Exception:  # noqa: BLE001 - a worker died: decided here (where a real error shows again)
                self.close()
                verdict = decide_cached(*args, **kwargs)
        else:
            args, kwargs = self._take(key)
            verdict = decide_cached(*args, **kwargs)
        self._fill()
        if not self._futures and not self._waiting:
            self.close()
        return verdict

    def _take(self, key: Hashable) -> tuple[tuple, dict[str, Any]]:
        for index, (waiting, arguments) in enumerate(self._waiting):
            if waiting == key:
                del self._waiting[index]
                return arguments()
        raise KeyError(f"no separability job {key!r}")

    def _hand_over_next(self) -> None:
        assert self._pool is not None
        key, arguments = self._waiting.pop(0)
        args, kwargs = arguments()
        try:
            self._futures[key] = self._pool.submit(_decide_in_worker, args, kwargs)
        except BrokenProcessPool:
            self.close()
            self._waiting.insert(0, (key, lambda: (args, kwargs)))
            return
        self._arguments[key] = args, kwargs

    def _fill(self) -> None:
        while self._pool is not None and self._waiting and len(self._futures) < self._ahead:
            self._hand_over_next()

    def close(self, stop: bool = False) -> None:
        """Shut the workers down; ``stop`` ends the ones still solving instead of waiting for them."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        self._closed = pool  # see _shut_down
        if stop:
            self._futures.clear()
            self._arguments.clear()
            self._waiting.clear()
        _shut_down(pool, stop)


def _shut_down(pool: ProcessPoolExecutor, now: bool) -> None:
    """Drop the jobs no worker has taken; ``now`` also ends the workers (their jobs are lost).

    The caller keeps ``pool`` referenced until its futures are done: the executor's manager thread
    holds it only weakly, and cancels the dropped jobs only while it is alive.
    """
    # ProcessPoolExecutor has no public way to end running workers before Python 3.14
    # (terminate_workers); without this an interrupted run would wait for their LPs. Taken before
    # shutdown(), which forgets them.
    processes = list((pool._processes or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    if now:
        for process in processes:
            process.terminate()


# --- the head start -------------------------------------------------------------------------------

_IMAGES: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))


def _load_images(source: Callable[[], tuple[np.ndarray, np.ndarray]]) -> None:
    """Worker initializer: the images every job takes its pair from, loaded by the worker itself (sending
    60,000 images would hold up the training process while each worker starts)."""
    global _IMAGES
    _ignore_interrupts()
    _IMAGES = source()


def _route_in_worker(pair: tuple[int, int], time_limit: float) -> LogisticRoute | None:
    from harness.paper.algorithms.perceptron import pair_data

    rows, signs = pair_data(*_IMAGES, pair)
    if (cache_dir() / f"{data_hash(rows, signs)}.json").exists():
        return None  # the verdict is cached: nothing to decide
    with blas_threads(1):
        return logistic_route(rows, signs, time_limit=time_limit)


class HeadStart:
    """The logistic route of each of ``pairs`` (in order), worked out in ``workers`` processes while this
    one trains the perceptrons. ``source`` (picklable) gives the images and labels the pairs come from.

    All jobs are queued at once (a job is only a pair). When the training ends, :meth:`stop` drops the
    jobs no worker has taken; :meth:`route` then gives a pair's route if a worker took it (waiting for
    it to finish), else None, and the verdict works it out itself.
    """

    def __init__(self, source: Callable[[], tuple[np.ndarray, np.ndarray]], pairs: Sequence[tuple[int, int]],
                 workers: int, time_limit: float) -> None:
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_load_images, initargs=(source,))
        self._futures = {pair: self._pool.submit(_route_in_worker, pair, time_limit) for pair in pairs}
        self._stopped = False

    def stop(self, now: bool = False) -> None:
        """Take no more jobs; ``now`` also ends the ones being worked out (Ctrl-C), also after a plain stop."""
        if now or not self._stopped:
            self._stopped = True
            _shut_down(self._pool, now)

    def route(self, pair: tuple[int, int]) -> LogisticRoute | None:
        future = self._futures.pop(pair, None)
        if future is None:
            return None
        try:
            return future.result()
        except (KeyboardInterrupt, SystemExit):
            self.stop(now=True)
            raise
        except Exception:  # noqa: BLE001 - dropped (cancelled), or the worker died: the verdict works it out
            return None
