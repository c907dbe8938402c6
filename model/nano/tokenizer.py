"""A small byte-level BPE tokenizer for the nano model, trained offline on the world's instructions.

The real model uses Qwen2.5-VL's 151k-token tokenizer, which cannot be downloaded here. This one keeps the
same special tokens (chat and vision markers) and chat template so the Qwen2.5-VL code path is unchanged, and
being byte-level it accepts any text (English, Chinese, anything else) without unknown tokens.

Text is normalised before tokenising (saved with the tokenizer, so training and every caller agree):
Unicode NFKC (full-width Chinese punctuation and letters become ASCII), curly quotes become straight ones,
and everything is lower-cased. Lower-casing keeps text edits intact: the world's letters are single-letter
words ("change the letter a to k"), which the model tells from the article "a" by context, and "A" / "a"
name the same letter.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from model.tiny import QWEN2_VL_CHAT_TEMPLATE, QWEN_SPECIAL_TOKENS

# The nano model's prompt prefix (its `prompt_prefix` config); the tokenizer is trained on it too.
NANO_PREFIX = "Edit the picture as the user asks."


def instruction_corpus(n: int = 6000, seed: int = 12345) -> list[str]:
    """Instructions drawn from the world's training grammar (both languages), the tokenizer's training text."""
    import random

    from model.nano.grammar import training_instruction
    from model.nano.world import make_triplet

    rng = random.Random(seed)

    # The chat template's fixed words too, so the prompt tail ("assistant") costs one token, not nine.
    template_words = [
        "system",
        "You are a helpful assistant.",
        "user",
        "assistant",
        NANO_PREFIX,
        "Picture 1: ",
    ]
    texts = []
    for i in range(n):
        t = make_triplet(seed, i, zh_fraction=0.5)
        texts += [
            t.instruction,
            training_instruction(t.category, t.edit, rng, zh_fraction=0.5, typo_prob=0, unknown_prob=0)[0],
        ]
    return template_words * 50 + texts


def normalizer() -> normalizers.Normalizer:
    """NFKC, straight quotes, lower case (see the module docstring)."""
    return normalizers.Sequence(
        [
            normalizers.NFKC(),
            normalizers.Replace("\u2018", "'"),
            normalizers.Replace("\u2019", "'"),
            normalizers.Replace("\u201c", '"'),
            normalizers.Replace("\u201d", '"'),
            normalizers.Lowercase(),
        ]
    )


def build_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts` (default: the world's instructions)."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizer()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=QWEN_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts if texts is not None else instruction_corpus()), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL_TOKENS[1:]})
    tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return tokenizer
