"""Instruction grammar: frames, held-out frames, variants, typos; text normalisation and apostrophes."""

import random
import re

import pytest
from PIL import Image

from model.encoder import tokenize_prompt
from model.nano.build import NANO_PREFIX, nano_processor
from model.nano.grammar import (
    ENGLISH_ONLY_VARIANTS,
    FRAMES,
    VALUE_FRAMES,
    VARIANTS,
    add_typo,
    frames,
    heldout_frame_list,
    training_instruction,
    variant_instruction,
)
from model.nano.world import CATEGORIES, LANGUAGES, make_triplet


@pytest.fixture(scope="module")
def tokenizer():
    return nano_processor().tokenizer


def _edits(category, n=12):
    return [make_triplet(41, i, categories=(category,)) for i in range(n)]


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_heldout_frames_are_never_training_frames(category, lang):
    for t in _edits(category):
        train, held = frames(category, t.edit, lang, "train"), frames(category, t.edit, lang, "heldout")
        assert held, f"{category}/{lang} has no held-out frame"
        assert not set(train) & set(held)
        assert len(train) >= 4


def test_training_draws_never_use_a_heldout_frame():
    # Held-out frames keep words no training frame of their category has ("has to", "需要", ...).
    rng = random.Random(0)
    for category in CATEGORIES:
        for t in _edits(category, 4):
            for _ in range(150):
                text, _ = training_instruction(category, t.edit, rng)
                assert "has to" not in text.lower() and "需要" not in text, text


def test_frame_table_is_complete():
    assert set(FRAMES) | {c for c, _ in VALUE_FRAMES} == set(CATEGORIES)
    listed = heldout_frame_list()
    assert len(listed) >= 2 * 2 * len(CATEGORIES)
    assert all(re.match(r"^\w+/(en|zh)", line) for line in listed)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_names_the_edit(variant):
    rng = random.Random(1)
    t = make_triplet(42, 0, categories=("color",), zh_fraction=0.0)
    for lang in LANGUAGES:
        if lang == "zh" and variant in ENGLISH_ONLY_VARIANTS:
            continue
        for _ in range(20):
            text = variant_instruction("color", t.edit, lang, variant, rng)
            assert text and "{" not in text
            if variant == "all_caps":
                assert text == text.upper()
            if variant == "question":
                assert text.endswith(("?", "? thanks", "吗？", "？"))
    with pytest.raises(ValueError, match="unknown variant"):
        variant_instruction("color", t.edit, "en", "shouting", rng)


def test_typo_changes_one_long_word_and_spares_letter_names():
    rng = random.Random(2)
    text = "change the letter a to k in the picture"
    for _ in range(200):
        typo = add_typo(text, rng)
        before, after = text.split(" "), typo.split(" ")
        assert len(before) == len(after)
        changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
        assert len(changed) <= 1
        assert all(len(before[i]) >= 4 for i in changed)


def test_normalisation_case_width_and_quotes(tokenizer):
    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    assert ids("Change the letter A to K") == ids("change the letter a to k")
    assert ids("CHANGE THE LETTER A TO K") == ids("change the letter a to k")
    assert ids("把字母A改成K，谢谢") == ids("把字母a改成k,谢谢")  # full-width comma: NFKC
    assert ids("I\u2019d like a K") == ids("i'd like a k")  # curly apostrophe
    assert ids("change the letter a to k") != ids("change the letter a to b")


def test_apostrophes_stay_apostrophes():
    processor = nano_processor()
    image = Image.new("RGB", (32, 32))
    plain = tokenize_prompt(
        processor, image, "i would like the letter a as k", NANO_PREFIX, split_quotes=False
    )
    contraction = tokenize_prompt(processor, image, "I'd like 'TRAIN' as K", NANO_PREFIX, split_quotes=False)
    quoted = tokenize_prompt(processor, image, "I'd like 'TRAIN' as K", NANO_PREFIX, split_quotes=True)
    # Without quote splitting a contraction costs about as much as the plain words ...
    assert contraction.input_ids.shape[1] <= plain.input_ids.shape[1] + 4
    # ... while the official quote-aware path char-splits everything after the apostrophe.
    assert quoted.input_ids.shape[1] > contraction.input_ids.shape[1] + 10
