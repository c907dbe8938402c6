"""The automatic filter rejects broken triplets with a reason; the success check accepts only real edits."""

import random
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from model.nano.checks import check_edit
from model.nano.filter import score_triplet
from model.nano.world import (
    CATEGORIES,
    GLOBAL_CATEGORIES,
    alternative_targets,
    cell_box,
    make_triplet,
    render,
)


def _triplet(category, index=0, zh=0.0):
    return make_triplet(21, index, categories=(category,), zh_fraction=zh)


def _paste_cell(image: Image.Image, donor: Image.Image, slot: int) -> Image.Image:
    top, left, bottom, right = cell_box(slot, image.size[0])
    out = image.copy()
    out.paste(donor.crop((left, top, right, bottom)), (left, top))
    return out


def test_generated_triplets_pass():
    verdicts = [score_triplet(make_triplet(22, i)) for i in range(200)]
    assert sum(v.passed for v in verdicts) >= 195
    assert all(v.reason == "ok" for v in verdicts if v.passed)


def test_rejects_no_op():
    t = _triplet("color")
    verdict = score_triplet(replace(t, target=t.source.copy()))
    assert not verdict.passed and "identical" in verdict.reason and verdict.score < 1


@pytest.mark.parametrize("category", ["color", "remove", "add", "style"])
def test_rejects_change_outside_named_cell(category):
    t = _triplet(category)
    other = next(s for s in range(4) if s not in t.slots)
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    verdict = score_triplet(replace(t, target=_paste_cell(t.target, noise, other)))
    assert not verdict.passed and f"[{other}]" in verdict.reason


def test_rejects_edit_in_wrong_cell():
    t = _triplet("remove")
    # Undo the edit where it belongs, apply a different change elsewhere.
    other = next(s for s in range(4) if s not in t.slots)
    broken = _paste_cell(t.target, t.source, t.slots[0])
    broken = _paste_cell(broken, Image.new("RGB", (32, 32), (0, 0, 0)), other)
    assert not score_triplet(replace(t, target=broken)).passed


@pytest.mark.parametrize("zh", [0.0, 1.0])
def test_rejects_instruction_that_does_not_name_the_edit(zh):
    t = _triplet("color", zh=zh)
    unrelated = _triplet("tone", index=1, zh=zh).instruction
    verdict = score_triplet(replace(t, instruction=unrelated))
    assert not verdict.passed and "does not mention" in verdict.reason


@pytest.mark.parametrize("category", CATEGORIES)
def test_check_accepts_ground_truth_and_rejects_copy(category):
    for index in range(3):
        t = _triplet(category, index)
        assert check_edit(t, t.target).success
        copy = check_edit(t, t.source)
        assert not copy.success and copy.reason != "ok"


@pytest.mark.parametrize("category", sorted(set(CATEGORIES) - GLOBAL_CATEGORIES))
def test_check_rejects_collateral_damage(category):
    t = _triplet(category)
    other = next(s for s in range(4) if s not in t.slots)
    damaged = _paste_cell(t.target, Image.new("RGB", (32, 32), (0, 0, 0)), other)
    result = check_edit(t, damaged)
    assert not result.success and "rest of the image" in result.reason


def test_check_rejects_wrong_colour():
    t = _triplet("color")
    slot = t.slots[0]
    wrong = _paste_cell(t.target, t.source, slot)  # the object keeps its old colour
    result = check_edit(t, wrong)
    assert not result.success and not result.property_ok


def _noisy(image: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, sigma, (*image.size[::-1], 3))
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("category", CATEGORIES)
def test_check_baselines(category):
    """identity 0 %, ground truth 100 %, ground truth + noise (sigma 5 grey levels) >= 95 %, 60/40 and
    40/60 cross-fades of target and source <= 5 %, the result of another edit of the category <= 2 %."""
    rng = np.random.default_rng(0)
    pick = random.Random(0)
    rates: dict[str, list[bool]] = {
        k: [] for k in ("identity", "truth", "noise", "fade64", "fade46", "other")
    }
    for index in range(25):
        t = make_triplet(23, index, categories=(category,), split="eval")
        rates["identity"].append(check_edit(t, t.source).success)
        rates["truth"].append(check_edit(t, t.target).success)
        rates["noise"].append(check_edit(t, _noisy(t.target, 5, rng)).success)
        rates["fade64"].append(check_edit(t, Image.blend(t.source, t.target, 0.6)).success)
        rates["fade46"].append(check_edit(t, Image.blend(t.source, t.target, 0.4)).success)
        others = [s for s in alternative_targets(t.source_scene, category) if s != t.target_scene]
        if others:
            rates["other"].append(check_edit(t, render(pick.choice(others))).success)
    share = {k: float(np.mean(v)) for k, v in rates.items() if v}
    assert share["identity"] == 0.0 and share["truth"] == 1.0, share
    assert share["noise"] >= 0.95, share
    assert share["fade64"] <= 0.05 and share["fade46"] <= 0.05, share
    assert share.get("other", 0.0) <= 0.02, share


def test_check_refuses_a_ghost_of_the_old_letter():
    t = next(x for i in range(50) if (x := _triplet("text", i)).edit["old"] != x.edit["new_letter"])
    ghost = Image.blend(t.target, t.source, 0.3)  # the new letter with a faint old one behind it
    result = check_edit(t, ghost)
    assert not result.success and "done" in result.reason
    assert 0.6 < result.completeness < 0.75


def test_check_accepts_the_edit_with_speckle():
    # A few wrong pixels inside the edited cell do not turn a visible edit into a failure.
    t = _triplet("text", 1)
    out = np.asarray(t.target).copy()
    top, left, _, _ = cell_box(t.slots[0], 32)
    out[top + 1, left + 1] = out[top + 14, left + 3] = (0, 0, 0)
    result = check_edit(t, Image.fromarray(out))
    assert result.success, result.reason
