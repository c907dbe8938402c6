"""Numeric inputs from the page or the API: finite and within the range the UI offers, else a clear message.

A gr.Number or gr.Slider bounds only what the widgets let a person pick; an API client can send anything,
e.g. ``cfg=NaN``, which the model turns into a black image reported as a success.
"""

from __future__ import annotations

import math

from workbench.ui.context import require


def number_in_range(value: object, label: str, low: float, high: float) -> float:
    """``value`` as a float if it is a finite number within [low, high]; gr.Error naming ``label`` otherwise."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    require(ok and low <= value <= high, f"{label} must be a number from {low:g} to {high:g}, got {value!r}.")
    return float(value)
