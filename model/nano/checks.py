"""Programmatic success check for an edit of a world triplet: does the output show the requested edit?

An edit succeeds when all of these hold:
1. **Property**: among every result one edit of the same category could produce from the source (each
   other letter, colour, shape, texture, style, cell, background or tone; `world.alternative_targets`)
   and the source itself, the output is nearest to the requested target. This is what "the changed
   region shows the target's colour / shape / letter / texture / position" means for the world.
2. **Completeness**: over the pixels the edit changes, the output has gone at least `MIN_COMPLETENESS`
   of the way from the source to the target (a least-squares projection; 1 = the target, 0 = the
   source). Cross-fades and ghosts of the old object stop part-way and fail; pixel noise averages out.
3. **Fidelity**: every cell the edit must not touch, and the untouched pixels of the edited cells, stay
   within `REST_TOLERANCE` / `KEEP_TOLERANCE` mean absolute error of the target.

Returning the source unchanged fails every category (completeness 0). Baselines (tests/nano): the ground
truth passes, the ground truth plus Gaussian noise of 5 grey levels passes, 60/40 and 40/60 cross-fades of
target and source and the result of another edit of the same category fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from model.nano.world import GLOBAL_CATEGORIES, Scene, Triplet, alternative_targets, cell_box, render

MIN_COMPLETENESS = 0.75  # share of the source -> target change the output must make (cross-fades stop at 0.6)
MAX_COMPLETENESS = 1.3  # beyond this the output overshoots into something else
REST_TOLERANCE = 0.035  # mean abs error (0..1) allowed in each cell the edit must not touch
KEEP_TOLERANCE = 0.05  # mean abs error allowed on the unchanged pixels of the edited cells
CHANGED_DELTA = 0.04  # a pixel is changed by the edit where |target - source| exceeds this in some channel


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check. Errors are mean absolute errors in [0, 1]; `completeness` is the share of
    the source -> target change the output makes; `property_ok` says the output is nearest the target."""

    success: bool
    edit_error: float
    rest_error: float
    property_ok: bool
    reason: str
    completeness: float = 0.0


def to_array(image: Image.Image, size: int) -> np.ndarray:
    """RGB float array in [0, 1] at `size` x `size` (resized with BOX if needed)."""
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float32) / 255.0


@lru_cache(maxsize=4096)
def _rendered(scene: Scene, size: int) -> np.ndarray:
    return to_array(render(scene, size), size)


def nearest_alternative(triplet: Triplet, out: np.ndarray) -> tuple[bool, float]:
    """(is the output nearest the requested target among the same-category results and the source?,
    the squared-error margin to the nearest wrong candidate; > 0 when the target wins)."""
    size = out.shape[0]
    target_error = float(((out - _rendered(triplet.target_scene, size)) ** 2).mean())
    others = [
        s for s in alternative_targets(triplet.source_scene, triplet.category) if s != triplet.target_scene
    ]
    others.append(triplet.source_scene)
    best_other = min(float(((out - _rendered(s, size)) ** 2).mean()) for s in others)
    return target_error < best_other, best_other - target_error


def completeness(out: np.ndarray, source: np.ndarray, target: np.ndarray, changed: np.ndarray) -> float:
    """Least-squares a in out ~ source + a (target - source) over the changed pixels."""
    delta = (target - source)[changed]
    moved = (out - source)[changed]
    denom = float((delta**2).sum())
    return float((moved * delta).sum() / denom) if denom > 0 else 1.0


def _cell_mean(values: np.ndarray, slot: int) -> float:
    top, left, bottom, right = cell_box(slot, values.shape[0])
    return float(values[top:bottom, left:right].mean())


def _edited_mask(triplet: Triplet, size: int) -> np.ndarray:
    edited = np.zeros((size, size), dtype=bool)
    for slot in triplet.slots:
        top, left, bottom, right = cell_box(slot, size)
        edited[top:bottom, left:right] = True
    return edited


def check_edit(triplet: Triplet, output: Image.Image) -> CheckResult:
    """Check an edited image against the triplet's instruction and ground truth."""
    size = triplet.target.size[0]
    out, target, source = (to_array(im, size) for im in (output, triplet.target, triplet.source))
    err = np.abs(out - target).mean(-1)
    edited = _edited_mask(triplet, size)
    changed = np.abs(target - source).max(-1) > CHANGED_DELTA
    edit_error = float(err[edited].mean())
    rest_cells = [s for s in range(len(triplet.source_scene.objects)) if s not in triplet.slots]
    rest_error = max((_cell_mean(err, s) for s in rest_cells), default=0.0)

    reasons = []
    property_ok, _ = nearest_alternative(triplet, out)
    if not property_ok:
        reasons.append("the output looks more like another edit (or the source) than the requested one")
    done = completeness(out, source, target, changed)
    if done < MIN_COMPLETENESS:
        reasons.append(f"the edit is only {done:.0%} done (cross-fade or ghost of the source)")
    elif done > MAX_COMPLETENESS:
        reasons.append(f"the edit overshoots ({done:.0%})")
    keep = edited & ~changed
    if triplet.category not in GLOBAL_CATEGORIES and keep.any() and err[keep].mean() > KEEP_TOLERANCE:
        reasons.append(
            f"the edited cells changed beyond the edit ({err[keep].mean():.3f} > {KEEP_TOLERANCE})"
        )
    if rest_error > REST_TOLERANCE:
        reasons.append(f"the rest of the image changed ({rest_error:.3f} > {REST_TOLERANCE})")
    return CheckResult(
        success=not reasons,
        edit_error=edit_error,
        rest_error=rest_error,
        property_ok=property_ok,
        reason="; ".join(reasons) or "ok",
        completeness=done,
    )
