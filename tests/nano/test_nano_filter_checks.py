"""The automatic filter rejects broken triplets with a reason; the success check accepts only real edits."""

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from model.nano.checks import check_edit
from model.nano.filter import score_triplet
from model.nano.world import CATEGORIES, GLOBAL_CATEGORIES, cell_box, make_triplet


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
