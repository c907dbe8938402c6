"""A small byte-level BPE tokenizer for the nano model, trained offline on the world's instructions.

The real model uses Qwen2.5-VL's 151k-token tokenizer, which cannot be downloaded here. This one keeps the
same special tokens (chat and vision markers) and chat template so the Qwen2.5-VL code path is unchanged, and being
byte-level it accepts any text (English, Chinese, anything else) without unknown tokens.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from model.tiny import QWEN2_VL_CHAT_TEMPLATE, QWEN_SPECIAL_TOKENS

# The nano model's prompt prefix (its `prompt_prefix` config); the tokenizer is trained on it too.
NANO_PREFIX = "Edit the picture as the user asks."


def instruction_corpus(n: int = 3000, seed: int = 12345) -> list[str]:
    """Instructions drawn from the world (both languages), the tokenizer's training text."""
    from model.nano.world import make_triplet

    # The chat template's fixed words too, so the prompt tail ("assistant") costs one token, not nine.
    template_words = [
        "system",
        "You are a helpful assistant.",
        "user",
        "assistant",
        NANO_PREFIX,
        "Picture 1: ",
    ]
    return template_words * 50 + [make_triplet(seed, i, zh_fraction=0.5).instruction for i in range(n)]


def build_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = 640) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts` (default: the world's instructions)."""
    tok = Tokenizer(models.BPE())
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
