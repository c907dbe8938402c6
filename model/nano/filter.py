"""Automatic triplet filter: the nano analogue of the paper's MLLM filter.

Each triplet is scored on independent checks: the target differs from the source, the change lies in the
cells the instruction is about and nowhere else, the named object really is in the source where the
instruction says, and the instruction text names the edit (colours, shapes, letters, places in the
instruction's language). A triplet passes when every check passes; the first failing check is recorded
as the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.nano.checks import to_array
from model.nano.world import (
    BACKGROUNDS,
    COLORS,
    GLOBAL_CATEGORIES,
    GRID,
    SLOT_NAMES,
    ZH,
    Scene,
    Triplet,
    cell_box,
)

CHANGE_DELTA = 4 / 255  # a cell counts as changed when its mean abs difference exceeds this
OBJECT_PIXEL_DELTA = 0.15  # a pixel belongs to the object where it differs this much from the background


def nearest(color: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    """Name of the palette colour nearest to an RGB colour in [0, 1]."""
    names = list(palette)
    values = np.array([palette[n] for n in names], dtype=np.float32) / 255.0
    return names[int(np.argmin(((values - color) ** 2).sum(1)))]


def object_visible(image: np.ndarray, scene: Scene, slot: int) -> tuple[bool, str]:
    """Is the scene's object in `slot` visible in the image, in its colour? (ok, why not)"""
    bg = np.array(BACKGROUNDS[scene.background], dtype=np.float32) / 255.0
    top, left, bottom, right = cell_box(slot, image.shape[0])
    cell = image[top:bottom, left:right]
    obj = scene.objects[slot]
    object_pixels = np.abs(cell - bg).max(-1) > OBJECT_PIXEL_DELTA
    if not object_pixels.any():
        return False, f"cell {slot}: the object has no visible pixels"
    # Stripes and anti-aliased edges mix the colour with white/background; the most saturated quarter of
    # the object's pixels carries the pure colour.
    pixels = cell[object_pixels]
    saturation = pixels.max(1) - pixels.min(1)
    vivid = pixels[np.argsort(-saturation)[: max(1, len(pixels) // 4)]]
    got = nearest(np.median(vivid, 0), COLORS | {"background": BACKGROUNDS[scene.background]})
    ok = got == obj.color
    return ok, "" if ok else f"cell {slot}: object looks {got}, expected {obj.color}"


@dataclass(frozen=True)
class FilterResult:
    """score: fraction of checks passed (1.0 = all); reason: "ok" or why the triplet was rejected."""

    passed: bool
    score: float
    reason: str


def changed_cells(source: np.ndarray, target: np.ndarray) -> set[int]:
    """Cells whose mean absolute difference between source and target exceeds CHANGE_DELTA."""
    diff = np.abs(source - target).mean(-1)
    changed = set()
    for slot in range(GRID * GRID):
        top, left, bottom, right = cell_box(slot, diff.shape[0])
        if diff[top:bottom, left:right].mean() > CHANGE_DELTA:
            changed.add(slot)
    return changed


def expected_words(triplet: Triplet) -> list[str]:
    """Words the instruction must contain for this edit, in the instruction's language."""

    def word(w: str) -> str:
        return ZH.get(w, w) if triplet.language == "zh" else w

    src, tgt = triplet.source_scene, triplet.target_scene
    if triplet.category == "background":
        return [word(tgt.background)]
    if triplet.category == "tone":
        return []
    words: list[str] = []
    for slot in triplet.slots:
        for scene in (src, tgt):
            obj = scene.objects[slot]
            if obj is None:
                continue
            if obj.kind == "letter":
                words.append(obj.letter)
            if triplet.category != "text":  # text edits name the letter, not its colour
                words.append(word(obj.color))
                words.append("" if obj.kind == "letter" else word(obj.kind))
    if triplet.category == "add":
        words.append(word(SLOT_NAMES[triplet.slots[0]]))
    return words


def score_triplet(triplet: Triplet) -> FilterResult:
    """Run every check on one triplet."""
    size = triplet.source.size[0]
    source = to_array(triplet.source, size)
    target = to_array(triplet.target, size)
    changed = changed_cells(source, target)
    expected = set(triplet.slots)
    instruction = triplet.instruction.lower()

    checks: list[tuple[bool, str]] = [
        (bool(changed), "target is identical to the source (no edit)"),
        (
            triplet.category in GLOBAL_CATEGORIES or changed <= expected,
            f"cells {sorted(changed - expected)} changed but the instruction is about {sorted(expected)}",
        ),
        (
            triplet.category in GLOBAL_CATEGORIES or changed == expected,
            f"cells {sorted(expected - changed)} named by the instruction did not change",
        ),
    ]
    # The named object must be visible in the source where the edit says it is.
    for slot in triplet.slots:
        if triplet.source_scene.objects[slot] is not None:
            ok, why = object_visible(source, triplet.source_scene, slot)
            checks.append((ok, f"named object not found in the source: {why}"))
    if triplet.category == "background":
        bg = np.array(BACKGROUNDS[triplet.target_scene.background], dtype=np.float32) / 255.0
        corner = target[0, 0] if triplet.target_scene.objects[0] is None else target[-1, -1]
        checks.append(
            (bool(np.abs(corner - bg).max() < 0.05), "target background is not the requested colour")
        )
    missing = [w for w in expected_words(triplet) if w.lower() not in instruction]
    checks.append((not missing, f"instruction does not mention {missing}"))

    passed = sum(ok for ok, _ in checks)
    failures = [why for ok, why in checks if not ok]
    return FilterResult(
        passed=not failures, score=passed / len(checks), reason=failures[0] if failures else "ok"
    )
