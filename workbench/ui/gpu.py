"""ZeroGPU support: `spaces.GPU` when the `spaces` package is installed (on a Space), else a no-op."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def gpu(fn: F, duration: int = 120) -> F:
    """Wrap `fn` with spaces.GPU(duration=...) when available; off ZeroGPU spaces.GPU itself is a no-op."""
    if importlib.util.find_spec("spaces") is None:
        return fn
    import spaces  # optional dependency, only present on Spaces

    return spaces.GPU(duration=duration)(fn)
