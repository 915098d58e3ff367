"""Importing TensorFlow and Keras quietly, once, and placing work on a device.

TensorFlow is imported when the backend is first instantiated (``harness.backends.get_backend`` does
that after checking it is installed), never when a module of this package is imported, and never by
a torch run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from harness.errors import UserError

_TF_DEVICES = {"cpu": "/CPU:0", "cuda": "/GPU:0"}


@functools.cache
def frameworks() -> tuple[Any, Any]:
    """``(tensorflow, keras)``, with Keras on the TensorFlow backend and TF's C++ INFO logs quiet."""
    # Both variables are read once, at import: they must be set before the first import.
    quiet = "TF_CPP_MIN_LOG_LEVEL" not in os.environ  # the user's own setting wins
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    with _native_log_filter() if quiet and "tensorflow" not in sys.modules else contextlib.nullcontext():
        import keras
        import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise UserError(
            f"keras was already imported with the {keras.backend.backend()!r} backend in this process; "
            "the tensorflow backend needs KERAS_BACKEND=tensorflow"
        )
    return tf, keras


# absl's INFO and WARNING lines ("I0000 00:00:...") and its note that it was not initialised.
_NATIVE_NOISE = re.compile(r"^([IW]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl::InitializeLog)")


@contextlib.contextmanager
def _native_log_filter() -> Iterator[None]:
    """Drop absl's INFO/WARNING lines written to file descriptor 2 while TensorFlow loads.

    TF 2.21 logs its oneDNN notice through absl before TF_CPP_MIN_LOG_LEVEL is read, so the variable
    alone cannot hide it. Native code writes to the descriptor, not to ``sys.stderr``: the descriptor
    goes to a temporary file for the import, and every other line (errors) is written back after.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                if not _NATIVE_NOISE.match(line)
            ]
            sys.stderr.write("".join(kept))


def device_scope(device: str) -> Any:
    """The TensorFlow device context for a resolved harness device ('cpu' or 'cuda')."""
    tf, _ = frameworks()
    return tf.device(_TF_DEVICES[device])
