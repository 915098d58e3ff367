"""harness: re-run deep-learning experiments as declarative suites on PyTorch and TensorFlow."""

__version__ = "0.1.0"
