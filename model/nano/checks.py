"""Programmatic success check for an edit of a world triplet, per category.

An edit succeeds when (1) the cells the instruction names look like the ground-truth target there,
(2) the named property holds (an added/recoloured/replaced/moved object has the requested colour, a removed
object is gone, a new background has the requested colour), and (3) everything else is unchanged within
a tolerance. Returning the source unchanged fails every category.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from model.nano.world import BACKGROUNDS, COLORS, GLOBAL_CATEGORIES, Scene, Triplet, cell_box

EDIT_TOLERANCE = 0.08  # mean abs error (0..1) allowed inside the edited cells
REST_TOLERANCE = 0.03  # mean abs error allowed in every cell the edit must not touch
OBJECT_PIXEL_DELTA = 0.15  # a pixel belongs to the object where the target differs this much from background


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check; the errors are mean absolute errors in [0, 1]."""

    success: bool
    edit_error: float
    rest_error: float
    property_ok: bool
    reason: str


def to_array(image: Image.Image, size: int) -> np.ndarray:
    """RGB float array in [0, 1] at `size` x `size` (resized with BOX if needed)."""
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float32) / 255.0


def _cell(arr: np.ndarray, slot: int) -> np.ndarray:
    top, left, bottom, right = cell_box(slot, arr.shape[0])
    return arr[top:bottom, left:right]


def nearest(color: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    """Name of the palette colour nearest to an RGB colour in [0, 1]."""
    names = list(palette)
    values = np.array([palette[n] for n in names], dtype=np.float32) / 255.0
    return names[int(np.argmin(((values - color) ** 2).sum(1)))]


def _cell_property(out: np.ndarray, target: np.ndarray, scene: Scene, slot: int) -> tuple[bool, str]:
    """Does the output cell show what the target scene has there (an object of its colour, or nothing)?"""
    bg = np.array(BACKGROUNDS[scene.background], dtype=np.float32) / 255.0
    out_cell, tgt_cell = _cell(out, slot), _cell(target, slot)
    obj = scene.objects[slot]
    if obj is None:
        ok = bool(np.abs(out_cell - bg).mean() < EDIT_TOLERANCE)
        return ok, "" if ok else f"cell {slot} should be empty"
    object_pixels = np.abs(tgt_cell - bg).max(-1) > OBJECT_PIXEL_DELTA
    if not object_pixels.any():
        return False, f"cell {slot}: target object has no visible pixels"
    # Stripes and anti-aliased edges mix the colour with white/background; the most saturated quarter of
    # the object's pixels carries the pure colour.
    pixels = out_cell[object_pixels]
    saturation = pixels.max(1) - pixels.min(1)
    vivid = pixels[np.argsort(-saturation)[: max(1, len(pixels) // 4)]]
    got = nearest(np.median(vivid, 0), COLORS | {"background": BACKGROUNDS[scene.background]})
    ok = got == obj.color
    return ok, "" if ok else f"cell {slot}: object looks {got}, expected {obj.color}"


def check_edit(triplet: Triplet, output: Image.Image) -> CheckResult:
    """Check an edited image against the triplet's instruction and ground truth."""
    size = triplet.target.size[0]
    out = to_array(output, size)
    target = to_array(triplet.target, size)
    source = to_array(triplet.source, size)
    err = np.abs(out - target).mean(-1)
    edited = np.zeros(err.shape, dtype=bool)
    for slot in triplet.slots:
        top, left, bottom, right = cell_box(slot, size)
        edited[top:bottom, left:right] = True
    edit_error = float(err[edited].mean())
    rest_error = float(err[~edited].mean()) if (~edited).any() else 0.0
    source_error = float(np.abs(source - target).mean(-1)[edited].mean())

    reasons = []
    property_ok = True
    if triplet.category == "background":
        bg_pixels = (
            np.abs(target - np.array(BACKGROUNDS[triplet.target_scene.background]) / 255.0).max(-1) < 0.02
        )
        got = nearest(out[bg_pixels].mean(0), BACKGROUNDS) if bg_pixels.any() else "?"
        property_ok = got == triplet.target_scene.background
        if not property_ok:
            reasons.append(f"background looks {got}")
    elif triplet.category not in GLOBAL_CATEGORIES and triplet.category in (
        "add",
        "remove",
        "replace",
        "color",
        "move",
    ):
        for slot in triplet.slots:
            ok, why = _cell_property(out, target, triplet.target_scene, slot)
            property_ok &= ok
            if why:
                reasons.append(why)
    if edit_error > EDIT_TOLERANCE:
        reasons.append(f"edited region differs from target ({edit_error:.3f} > {EDIT_TOLERANCE})")
    if edit_error > 0.5 * source_error:
        reasons.append("edited region is closer to the source than to the target")
    if rest_error > REST_TOLERANCE:
        reasons.append(f"the rest of the image changed ({rest_error:.3f} > {REST_TOLERANCE})")
    return CheckResult(
        success=not reasons,
        edit_error=edit_error,
        rest_error=rest_error,
        property_ok=property_ok,
        reason="; ".join(reasons) or "ok",
    )
