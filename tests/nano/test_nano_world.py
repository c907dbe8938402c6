"""The synthetic world: determinism, coverage of categories and languages, disjoint splits."""

import numpy as np
import pytest

from model.nano.world import (
    CATEGORIES,
    LANGUAGES,
    alternative_targets,
    edit_key,
    make_triplet,
    render,
    split_of,
)


def _same(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_generation_is_deterministic():
    for index in range(20):
        a, b = make_triplet(7, index), make_triplet(7, index)
        assert a.instruction == b.instruction and a.category == b.category
        assert _same(a.source, b.source) and _same(a.target, b.target)
    assert make_triplet(7, 0).key != make_triplet(8, 0).key


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_category_in_both_languages(category, language):
    zh = 1.0 if language == "zh" else 0.0
    for index in range(5):
        t = make_triplet(3, index, categories=(category,), zh_fraction=zh)
        assert t.category == category and t.language == language
        assert not _same(t.source, t.target), "an edit must change the image"
        has_cjk = any("\u4e00" <= ch <= "\u9fff" for ch in t.instruction)
        assert has_cjk == (language == "zh"), t.instruction


def test_mixed_stream_covers_all_categories_and_phrasings():
    triplets = [make_triplet(11, i) for i in range(600)]
    assert {t.category for t in triplets} == set(CATEGORIES)
    assert {t.language for t in triplets} == set(LANGUAGES)
    for category in CATEGORIES:
        en = {t.instruction.split(" ")[0] for t in triplets if t.category == category and t.language == "en"}
        assert len(en) >= 2 or category == "text", f"{category}: one phrasing only: {en}"


def test_splits_are_disjoint():
    train = {make_triplet(5, i, split="train").key for i in range(300)}
    held_out = {make_triplet(5, i, split="eval").key for i in range(100)}
    assert not train & held_out
    assert all(split_of(k) == "eval" for k in held_out)


def test_render_rejects_bad_size():
    with pytest.raises(ValueError, match="multiple"):
        render(make_triplet(0, 0).source_scene, size=33)


def test_split_key_ignores_the_wording():
    a = make_triplet(9, 0, zh_fraction=0.0)
    assert a.key == edit_key(a.source_scene, a.category, a.edit)
    assert a.instruction not in a.key  # any phrasing of a held-out edit stays held out


@pytest.mark.parametrize("category", CATEGORIES)
def test_alternative_targets_hold_the_requested_one(category):
    for index in range(10):
        t = make_triplet(13, index, categories=(category,))
        alternatives = alternative_targets(t.source_scene, category)
        assert t.target_scene in alternatives
        assert t.source_scene not in alternatives
