"""harness: re-run deep-learning experiments as declarative suites on PyTorch and TensorFlow."""

import os

__version__ = "0.1.0"

# OpenMP threads (PyTorch's CPU kernels) spin at every barrier by default. Beside another busy process,
# a descheduled thread leaves its partner spinning for whole time slices: 200 steps of the MLP baseline
# on 2 threads took 22.5 s at load 4.5 on the 2-core development machine, 4.9 s with passive waiting,
# and the same 1.3-1.4 s either way on the quiet machine. Set before any framework loads its OpenMP
# runtime; a value the user set wins. Waiting never changes the arithmetic.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
