"""The optional compiled paths (``media_store/_speedups.c``), where the install built them.

Each caller keeps its Python original and takes the compiled function from here, or None
(a build without a C compiler, or ``MEDIA_STORE_PURE_PYTHON=1`` at install): then the
original runs.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

_speedups: ModuleType | None
try:
    _speedups = importlib.import_module("media_store._speedups")
except ImportError:  # pragma: no cover - a build without a C compiler
    _speedups = None


def compiled(name: str) -> Any:
    """The compiled function ``name``, or None where the module was not built."""
    return None if _speedups is None else getattr(_speedups, name)
