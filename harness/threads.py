"""How many threads a computation uses: the framework's thread count and NumPy/SciPy's BLAS pool.

A leaf module: backends, algorithms and tasks all size their work with it, and it imports nothing of
the harness but its errors.
"""

from __future__ import annotations

import os

from harness.errors import UserError


def blas_threads(count: int):
    """NumPy/SciPy's BLAS on ``count`` threads inside the block (threadpoolctl, a scikit-learn dependency)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(count)


def framework_threads() -> int:
    """Threads a framework should use: ``$HARNESS_THREADS`` if set, else the cores this process may run on.

    Containers and taskset narrow the cores below the machine's count. On a machine shared with other
    heavy processes, fewer threads than cores can be much faster (OpenMP workers spin while they wait
    for a core), which is what the variable is for.
    """
    override = os.environ.get("HARNESS_THREADS")
    if override:
        if not override.isdigit() or int(override) < 1:
            raise UserError(f"HARNESS_THREADS={override!r}: expected a positive integer")
        return int(override)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
