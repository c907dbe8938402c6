"""Fresh phrasings: the nano model on instructions that are in no table of the grammar.

`eval-nano`'s held-out frames were fixed before training, but they were also looked at while choosing what to
train next, so they are no longer a clean test of "understands paraphrases". This script keeps a second,
independent set: two more sentence frames per category and language (per value for tone), written for it and
never used for training or for choosing a model. Many reuse a word of the grammar in a new structure
("{obj} would be better in {color}", "{obj}不要了"); some bring a word or character the model never saw
(repaint, backdrop, 抹, 刷, 修, 底色).

Every listed model edits the same held-out edits (the world's "eval" split, a stream of its own) in every
fresh phrasing, through the full pipeline call on 1 thread, scored with `model.nano.checks.check_edit`; one
run prints all models side by side, so their difference does not depend on the machine's load.

    .venv/bin/python bench/nano_fresh_phrasings.py [--model DIR ...] [--per-category 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._machine import machine_line  # noqa: E402
from model.edit_settings import DEFAULT_MODEL_DIR  # noqa: E402
from model.nano.evaluate import heldout_triplets, run_edits, summarize  # noqa: E402
from model.nano.grammar import fill, frames  # noqa: E402
from model.nano.world import CATEGORIES, LANGUAGES, Triplet  # noqa: E402

BENCH_SEED = 31_337  # neither training, eval-nano nor bench/edit_endpoint.py draws this stream

FRESH: dict[str, dict[str, tuple[str, ...]]] = {
    "add": {"en": ("{new} would look nice in the {pos}", "pop {new} into the {pos}"),
            "zh": ("{pos}添{new}", "在{pos}摆上{new}")},
    "remove": {"en": ("make {obj} disappear", "{obj} can go now"),
               "zh": ("{obj}不要了", "把{obj}抹掉")},
    "replace": {"en": ("{obj} becomes {new}", "trade {obj} for {new}"),
                "zh": ("{obj}换掉，换成{new}", "把{obj}换为{new}")},
    "color": {"en": ("{obj} would be better in {color}", "repaint {obj} in {color}"),
              "zh": ("把{obj}刷成{color}", "{obj}涂成{color}就好")},
    "texture": {"en": ("cover {obj} with a {texture} pattern", "{obj} would be better {texture}"),
                "zh": ("给{obj}换上{texture}图案", "{obj}要{texture}的")},
    "style": {"en": ("let {obj} appear as {style}", "{obj} would be better as {style}"),
              "zh": ("把{obj}做成{style}", "{obj}要{style}的")},
    "background": {"en": ("the backdrop would be better {bg}", "repaint the backdrop {bg}"),
                   "zh": ("底色换成{bg}", "把背景刷成{bg}")},
    "text": {"en": ("{old} becomes {new_letter}", "the {old} would be better as {a_new}"),
             "zh": ("把字母{old}修改成{new_letter}", "{old}改写为{new_letter}")},
    "move": {"en": ("scoot {obj} {dir}", "{obj} would be better one step {dir}"),
             "zh": ("{obj}朝{dir}挪一格", "让{obj}往{dir}走一格")},
    "tone:grayscale": {"en": ("strip the colour out of the picture", "the image would be better in grey tones"),
                       "zh": ("把照片弄成黑白照", "图片不要颜色")},
    "tone:invert": {"en": ("turn every colour into its opposite", "the image would be better as a negative"),
                    "zh": ("颜色全部反过来", "把图片做成底片效果")},
}  # fmt: skip


def fresh_frames(triplet: Triplet, lang: str) -> tuple[str, ...]:
    """The fresh frames for a triplet's edit; refuses any that the grammar already has."""
    key = triplet.category if triplet.category != "tone" else f"tone:{triplet.edit['tone']}"
    own = FRESH[key][lang]
    known = set(frames(triplet.category, triplet.edit, lang, "train"))
    known |= set(frames(triplet.category, triplet.edit, lang, "heldout"))
    clash = known.intersection(own)
    if clash:
        raise AssertionError(f"not fresh, the grammar has {sorted(clash)}")
    return own


def fresh_triplets(triplets: list[Triplet], lang: str, seed: int) -> list[Triplet]:
    """Every triplet once per fresh frame of `lang`, with random synonyms (deterministic in `seed`)."""
    rng = random.Random(f"{seed}:{lang}")
    return [
        replace(t, instruction=fill(frame, t.edit, lang, rng), language=lang)
        for t in triplets
        for frame in fresh_frames(t, lang)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", action="append", help="model folder (repeatable); default: the shipped one"
    )
    parser.add_argument("--per-category", type=int, default=10)
    parser.add_argument("--json", help="write every row here")
    args = parser.parse_args()

    import torch

    from model.loading import load_editor

    torch.set_num_threads(1)
    models = args.model or [str(DEFAULT_MODEL_DIR)]
    triplets = heldout_triplets(args.per_category, CATEGORIES, seed=BENCH_SEED)
    asks = [t for lang in LANGUAGES for t in fresh_triplets(triplets, lang, BENCH_SEED)]
    print(machine_line())
    print(
        f"{len(asks)} edits per model: {args.per_category} held-out edits per category x 2 fresh frames x "
        f"{len(LANGUAGES)} languages"
    )
    results = {}
    for path in models:
        pipe = load_editor(path)
        pipe.set_progress_bar_config(disable=True)
        rows = run_edits(pipe, asks)
        results[path] = rows
        summary = summarize(rows)
        by_lang = {lang: part["success"] for lang, part in summary["per_language"].items()}
        langs = ", ".join(f"{lang} {rate:.0%}" for lang, rate in by_lang.items())
        gap = 100 * (by_lang["zh"] - by_lang["en"])
        print(f"\n{path}: {summary['overall']['success']:.0%} ({langs}; zh - en {gap:+.0f} points)")
        for lang in LANGUAGES:
            per_cat = summarize([r for r in rows if r["language"] == lang])["per_category"]
            print(f"  {lang}: " + ", ".join(f"{c} {part['success']:.0%}" for c, part in per_cat.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
