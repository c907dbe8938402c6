"""Checks every text and JSON value once, where it enters the workbench, so that both backends store it alike.

SQLite stores a NUL character, NaN and Infinity; PostgreSQL refuses them (``DataError``), so without these
checks a SQLite database could hold rows that no PostgreSQL restore accepts. Errors are ``ValueError`` naming
the field (importers add the file and line).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from workbench.instructions import MAX_INSTRUCTION_CHARS  # the Edit tab's cap, for imports too

__all__ = ["MAX_INSTRUCTION_CHARS", "check_json", "check_label", "check_number", "check_text"]

MAX_LABEL_CHARS = 200  # keys, categories, languages, system and study names
MAX_TEXT_CHARS = 100_000  # guidelines, notes, comments
MAX_JSON_DEPTH = 32


def check_text(value: object, what: str, required: bool = True, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Refuse text that is not a string, blank when required, too long, or holds NUL."""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{what} must be a non-empty string, got {value!r:.40}")
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL character (\\x00); remove it")
    if len(value) > max_chars:
        raise ValueError(f"{what} is {len(value)} characters long; at most {max_chars} are accepted")
    return value


def check_label(value: object, what: str, required: bool = False) -> str | None:
    """An optional short label (key, category, language, name): None or checked text."""
    if value is None and not required:
        return None
    return check_text(value, what, required=True, max_chars=MAX_LABEL_CHARS)


def check_number(value: object, what: str) -> float | None:
    """An optional finite number (NaN and Infinity are refused)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def check_json(value: Any, what: str, depth: int = 0) -> Any:
    """A JSON value storable on every backend: no NaN/Infinity, no NUL, string keys, at most MAX_JSON_DEPTH
    levels. Errors name the path inside the value (``metadata.a[2]``)."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return check_number(value, what)
    if isinstance(value, str):
        return check_text(value, what, required=False)
    if isinstance(value, list | tuple):
        return [check_json(v, f"{what}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, v in value.items():
            check_text(key, f"a key in {what}", required=False, max_chars=MAX_LABEL_CHARS)
            out[key] = check_json(v, f"{what}.{key}", depth + 1)
        return out
    raise ValueError(f"{what} holds a {type(value).__name__}, which is not JSON")
