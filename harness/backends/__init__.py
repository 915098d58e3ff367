"""Backends: one small class per framework, found by name.

A framework is imported only inside its backend module, and that module is imported only when the
backend is asked for, so a PyTorch run never imports TensorFlow and vice versa.
"""

from __future__ import annotations

import importlib

from harness.backends.base import Backend
from harness.errors import UserError

_BACKENDS = {
    "torch": ("harness.backends.torch", "TorchBackend"),
    "tensorflow": ("harness.backends.tensorflow", "TensorFlowBackend"),
}
_instances: dict[str, Backend] = {}


def backend_names() -> list[str]:
    return list(_BACKENDS)


def get_backend(name: str) -> Backend:
    """The backend called ``name``, with its framework importable; otherwise a UserError that says
    which names exist or which extra to install."""
    if name not in _BACKENDS:
        raise UserError(f"unknown backend {name!r}; backends: {', '.join(_BACKENDS)}")
    if name not in _instances:
        module_name, class_name = _BACKENDS[name]
        backend_class = getattr(importlib.import_module(module_name), class_name)
        backend_class.check_installed()
        _instances[name] = backend_class()
    return _instances[name]
