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
    _known,
    add_typo,
    frames,
    heldout_frame_list,
    insert_unknown_words,
    training_instruction,
    unknown_word,
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


def _heldout_only_tokens():
    """English words and Chinese characters of held-out frames that no training frame uses."""
    train_words, train_chars, held_words, held_chars = set(), set(), set(), set()
    for category in CATEGORIES:
        for t in _edits(category, 6):
            for lang in LANGUAGES:
                for which, words, chars in (
                    ("train", train_words, train_chars),
                    ("heldout", held_words, held_chars),
                ):
                    for frame in frames(category, t.edit, lang, which):
                        bare = re.sub(r"\{\w+\}", " ", frame)
                        words |= set(re.findall(r"[a-z']+", bare))
                        chars |= {ch for ch in bare if "\u4e00" <= ch <= "\u9fff"}
    return held_words - train_words, held_chars - train_chars


def test_unknown_words_are_never_grammar_words():
    held_words, held_chars = _heldout_only_tokens()
    assert "has" in held_words and "需" in held_chars  # the held-out structures really are unseen
    rng = random.Random(3)
    for _ in range(2000):
        en, zh = unknown_word("en", rng), unknown_word("zh", rng)
        assert en not in held_words and re.fullmatch(r"[a-z]+", en)
        assert 1 <= len(zh) <= 2 and not set(zh) & held_chars


def test_unknown_words_go_between_words_never_inside_a_field():
    rng = random.Random(4)
    places = set()
    for _ in range(300):
        frame = insert_unknown_words("turn {obj} {color}", "en", rng, 2)
        assert "{obj}" in frame and "{color}" in frame and "  " not in frame
        assert len(frame.split()) == 5
        original = "把{obj}变成{color}"
        zh = insert_unknown_words(original, "zh", rng, 1)
        added = "".join(ch for ch in zh if ch not in original)
        assert 1 <= len(added) <= 2 and "".join(ch for ch in zh if ch in original) == original
        assert "{obj}" in zh and "{color}" in zh  # a field is never split
        places.add(zh.index(added[0]))
    # Chinese has no spaces: every place outside a field is used, "变X成" included
    assert places == {0, 1, 6, 7, 8, 15}
    assert insert_unknown_words("turn {obj} {color}", "en", rng, 0) == "turn {obj} {color}"


def test_training_draws_with_unknown_words_keep_the_edit_words():
    rng = random.Random(5)
    t = make_triplet(42, 0, categories=("color",), zh_fraction=0.0)
    noisy = 0
    for _ in range(300):
        text, lang = training_instruction("color", t.edit, rng, typo_prob=0, unknown_prob=0.5)
        plain_words = set(re.findall(r"[a-z]+", text.lower()))
        if lang == "en":
            noisy += not plain_words <= _known()[0]
    assert 60 < noisy < 200  # about half of the English draws carry at least one unknown word
