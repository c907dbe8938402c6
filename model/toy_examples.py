"""Edit-tab examples for the embedded model: toy-world edits it gets right at its default settings.

Each example is a held-out triplet (the world's "eval" split, never trained on) from a stream of its own, so
`model.nano.checks.check_edit` can judge the model's answer. They were chosen by running that check at the
model's defaults over several seeds; `tests/nano/test_toy_examples.py` re-runs it, so a retrained model that
gets one wrong is caught.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from model.nano.world import Triplet, make_triplet

EXAMPLE_SEED = 777  # a stream of its own: neither the training export nor eval-nano (EVAL_SEED) draws it
# (category, language, index in that category's stream): half English, half Chinese.
EXAMPLES: tuple[tuple[str, str, int], ...] = (
    ("color", "en", 1),
    ("add", "zh", 0),
    ("remove", "en", 2),
    ("background", "zh", 2),
    ("replace", "en", 3),
    ("move", "zh", 1),
    ("tone", "en", 1),
    ("text", "zh", 3),
)
DISPLAY_FACTOR = 8  # examples are shown enlarged with square pixels: 32 px scenes as 256 px pictures


def example_triplet(category: str, language: str, index: int, size: int = 32) -> Triplet:
    """One example's triplet (source, instruction, ground-truth target)."""
    return make_triplet(
        EXAMPLE_SEED,
        index,
        categories=(category,),
        zh_fraction=1.0 if language == "zh" else 0.0,
        size=size,
        split="eval",
    )


def example_triplets(size: int = 32) -> list[Triplet]:
    return [example_triplet(*spec, size=size) for spec in EXAMPLES]


def save_examples(folder: Path, size: int = 32) -> list[list[str]]:
    """Write the examples' sources enlarged as PNG; returns Edit-tab examples [[image path, instruction]]."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, triplet in enumerate(example_triplets(size)):
        path = folder / f"toy-example-{i}.png"
        big = (size * DISPLAY_FACTOR, size * DISPLAY_FACTOR)
        triplet.source.resize(big, Image.Resampling.NEAREST).save(path)  # rewritten: examples may change
        rows.append([str(path), triplet.instruction])
    return rows
