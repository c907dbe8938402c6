"""The second held-out set of bench/nano_fresh_phrasings.py stays out of the grammar."""

import pytest

from bench import nano_fresh_phrasings as fresh
from model.nano.evaluate import heldout_triplets
from model.nano.world import CATEGORIES, LANGUAGES


def test_every_fresh_frame_is_new_and_fills_completely():
    triplets = heldout_triplets(4, CATEGORIES, seed=fresh.BENCH_SEED)
    assert {t.category for t in triplets} == set(CATEGORIES)
    for lang in LANGUAGES:
        asks = fresh.fresh_triplets(triplets, lang, seed=0)
        assert len(asks) == 2 * len(triplets)
        for ask in asks:
            assert ask.language == lang and "{" not in ask.instruction and ask.instruction.strip()


def test_a_frame_the_grammar_has_is_refused(monkeypatch):
    monkeypatch.setitem(fresh.FRESH, "color", {"en": ("paint {obj} {color}",), "zh": ("把{obj}变成{color}",)})
    triplet = heldout_triplets(1, ("color",), seed=fresh.BENCH_SEED)[0]
    with pytest.raises(AssertionError, match="not fresh"):
        fresh.fresh_frames(triplet, "en")
