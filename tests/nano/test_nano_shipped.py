"""The shipped nano model loads with Step1XEditPipeline.from_pretrained and reproduces its recorded eval."""

import json

import numpy as np
import pytest
import torch

from model.loading import DEFAULT_MODEL_DIR
from model.nano.evaluate import SUBSET_FILE, SUBSET_VARIANTS, subset_rows
from model.nano.world import make_triplet
from model.pipeline import Step1XEditPipeline


@pytest.fixture(scope="module")
def shipped():
    torch.set_num_threads(1)
    pipe = Step1XEditPipeline.from_pretrained(str(DEFAULT_MODEL_DIR))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_shipped_model_is_small_and_named(shipped):
    size = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file())
    assert size <= 30e6
    assert shipped.name == "step1x-edit-nano"
    assert (DEFAULT_MODEL_DIR / "README.md").read_text(encoding="utf-8").count("success") >= 1


@pytest.mark.slow
def test_reproduces_recorded_subset(shipped):
    recorded = json.loads((DEFAULT_MODEL_DIR / SUBSET_FILE).read_text(encoding="utf-8"))
    rows = subset_rows(shipped)
    assert [r["instruction"] for r in rows] == [r["instruction"] for r in recorded]
    assert {r.get("variant") for r in recorded} == {None, *SUBSET_VARIANTS}
    agree = np.mean([a["success"] == b["success"] for a, b in zip(rows, recorded, strict=True)])
    assert agree >= 0.9
    psnr_gap = np.mean([abs(a["psnr"] - b["psnr"]) for a, b in zip(rows, recorded, strict=True)])
    assert psnr_gap < 0.5
    assert {r["language"] for r in recorded} == {"en", "zh"}


def test_chinese_instruction_path(shipped):
    t = make_triplet(31, 0, categories=("tone",), zh_fraction=1.0, split="eval")
    tokenizer = shipped.processor.tokenizer
    ids = tokenizer(t.instruction, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids and tokenizer.decode(ids) == t.instruction
    embeds, mask = shipped.encode_prompt(t.source, [t.instruction])
    assert mask.sum() > 0 and torch.isfinite(embeds).all()
    out = shipped(t.source, t.instruction, seed=0).images[0]
    assert out.size == t.source.size


def test_contractions_and_capitals_reach_the_model_as_words(shipped, caplog):
    t = make_triplet(31, 1, categories=("text",), zh_fraction=0.0, split="eval")
    old, new = t.edit["old"], t.edit["new_letter"]
    assert not shipped.config.split_quotes
    with caplog.at_level("WARNING"):
        embeds, mask = shipped.encode_prompt(
            t.source, [f"Hey, I'd like the letter '{old}' to be '{new}', thanks!"]
        )
    assert "too long" not in caplog.text and 10 < int(mask.sum()) < shipped.config.max_length
    # Upper and lower case name the same letter: the normalised prompts encode identically.
    upper, _ = shipped.encode_prompt(t.source, [f"CHANGE THE LETTER {old} TO {new}"])
    lower, _ = shipped.encode_prompt(t.source, [f"change the letter {old.lower()} to {new.lower()}"])
    torch.testing.assert_close(upper, lower)
