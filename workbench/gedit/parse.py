"""Strict parsing of VIEScore judge replies into two 0-10 sub-scores.

Accepted: a JSON object with ``"score": [a, b]`` (two numbers in 0..10), optionally fenced, delimited by the
official ``||V^=^V||`` markers, surrounded by prose, written with full-width (Chinese) punctuation, or with raw
line breaks inside the reasoning string. What the
parser had to fix is recorded in the status (``ok`` or ``repaired``). Anything else is ``failed`` with a reason;
there is never a guessed, clamped or random score (the official code falls back to ``random.randint(0, 10)``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

SCORE_MIN, SCORE_MAX = 0.0, 10.0
_DELIMITER = "||V^=^V||"
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
# Full-width punctuation that Chinese replies use inside otherwise valid JSON.
_FULLWIDTH = str.maketrans(
    {
        "：": ":",
        "，": ",",
        "［": "[",
        "］": "]",
        "｛": "{",
        "｝": "}",
        "“": '"',
        "”": '"',
        "【": "[",
        "】": "]",
    }
)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_BARE_LIST = re.compile(r"^\s*\[\s*[-+]?\d+(?:\.\d+)?\s*(?:,\s*[-+]?\d+(?:\.\d+)?\s*)*\]\s*$")


@dataclass(frozen=True)
class ParseResult:
    """Outcome of parsing one reply: ``scores`` is None exactly when ``status == "failed"``."""

    status: str  # "ok" | "repaired" | "failed"
    scores: list[float] | None = None
    reasoning: str = ""
    error: str = ""
    fixes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def parse_reply(text: str | None, n_scores: int = 2) -> ParseResult:
    """Parse a judge reply expecting ``n_scores`` numbers in 0..10 under the key ``"score"``."""
    if not text or not text.strip():
        return ParseResult("failed", error="empty reply")
    fixes: list[str] = []
    obj, error = _find_object(text, fixes)
    if obj is None:
        return ParseResult("failed", error=error, fixes=fixes)
    if isinstance(obj, list):
        raw_scores, reasoning = obj, ""
    else:
        if "score" not in obj:
            return ParseResult("failed", error=f"no 'score' key (keys: {sorted(obj)})", fixes=fixes)
        raw_scores, reasoning = obj["score"], str(obj.get("reasoning", ""))
    scores, error = _validate_scores(raw_scores, n_scores)
    if scores is None:
        return ParseResult("failed", reasoning=reasoning, error=error, fixes=fixes)
    return ParseResult("repaired" if fixes else "ok", scores, reasoning, fixes=fixes)


def _find_object(text: str, fixes: list[str]) -> tuple[dict | list | None, str]:
    """Locate the JSON answer; every transformation beyond plain ``json.loads`` is noted in ``fixes``."""
    candidates = []
    if text.count(_DELIMITER) >= 2:
        candidates.append(text.split(_DELIMITER)[1])
    candidates.extend(m.group(1) for m in _FENCE.finditer(text))
    candidates.extend(_balanced_objects(text))
    parsed = []
    for candidate in candidates:
        applied: list[str] = []
        obj = _loads_with_repairs(candidate.strip(), applied)
        if isinstance(obj, dict):
            parsed.append((obj, applied))
    # Prefer the first object that carries a score; one without still gives a precise error.
    if parsed:
        obj, applied = sorted(parsed, key=lambda pair: "score" not in pair[0])[0]
        fixes.extend(applied)
        return obj, ""
    if _BARE_LIST.match(text.translate(_FULLWIDTH)):
        fixes.append("bare list")
        return json.loads(text.translate(_FULLWIDTH)), ""
    return None, "no JSON object with a score found"


def _balanced_objects(text: str) -> list[str]:
    """Top-level ``{...}`` spans in order, tracking braces outside strings (full-width braces count too)."""
    spans, depth, start, in_string, escaped = [], 0, -1, False, False
    normalised = text.translate(_FULLWIDTH)  # same length: every mapping is one character to one
    for i, ch in enumerate(normalised):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def _loads_with_repairs(candidate: str, fixes: list[str]) -> object | None:
    try:
        return json.loads(candidate)
    except json.JSONDecodeError:
        pass
    steps = (
        ("full-width punctuation", lambda s: s.translate(_FULLWIDTH)),
        ("trailing comma", lambda s: _TRAILING_COMMA.sub(r"\1", s)),
        ("single quotes", lambda s: s.replace("'", '"')),
    )
    repaired, applied = candidate, []
    obj = _loads_lenient(repaired, applied)
    for name, step in steps:
        if obj is not None:
            break
        changed = step(repaired)
        if changed != repaired:
            repaired = changed
            applied.append(name)
        obj = _loads_lenient(repaired, applied)
    if obj is not None:
        fixes.extend(applied)
    return obj


def _loads_lenient(text: str, applied: list[str]) -> object | None:
    """JSON, also with raw newlines / tabs inside a string (judges break long reasoning over lines; the
    official parser strips newlines and scores such replies)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        obj = json.loads(text, strict=False)
    except json.JSONDecodeError:
        return None
    applied.append("newline inside a string")
    return obj


def _validate_scores(raw: object, n_scores: int) -> tuple[list[float] | None, str]:
    if not isinstance(raw, list):
        return None, f"'score' is not a list: {raw!r}"
    if len(raw) != n_scores:
        return None, f"expected {n_scores} scores, got {len(raw)}: {raw!r}"
    scores = []
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return None, f"non-numeric score {value!r}"
        try:
            number = float(value)
        except ValueError:
            return None, f"non-numeric score {value!r}"
        if not math.isfinite(number) or not SCORE_MIN <= number <= SCORE_MAX:
            return None, f"score {value!r} outside {SCORE_MIN:g}..{SCORE_MAX:g}"
        scores.append(number)
    return scores, ""
