"""harness: re-run deep-learning experiments as declarative suites on PyTorch and TensorFlow."""

import os

__version__ = "0.1.0"

# OpenMP threads (PyTorch's CPU kernels) spin at every barrier by default. Beside another busy process,
# a descheduled thread leaves its partner spinning for whole time slices, which makes a loaded machine
# several times slower, while a quiet one runs as fast either way (docs/performance.md has the figures
# and the command). Set before any framework loads its OpenMP runtime; a value the user set wins.
# Waiting never changes the arithmetic.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
