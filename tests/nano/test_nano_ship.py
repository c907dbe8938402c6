"""`nano-ship` packages a run: model files, evaluation with variant rows, subset, pictures and the card."""

import json

import pytest
import torch

from model.nano.card import EXAMPLES_PNG
from model.nano.data import export_world
from model.nano.grammar import heldout_frame_list
from model.nano.ship import ship
from model.nano.train import TrainConfig, train


@pytest.mark.slow
def test_ship_writes_card_with_variant_table(tmp_path, tiny_config):
    torch.set_num_threads(1)
    export_world(tmp_path / "data", 6, seed=4, progress=False)
    run = tmp_path / "run"
    config = TrainConfig(steps=2, batch_size=2, model=tiny_config)
    train(tmp_path / "data" / "metadata.json", run, config, progress=False).save_pretrained(run / "model")
    summary = ship(run, tmp_path / "shipped", per_category=1, eval_seed=5)
    out = tmp_path / "shipped"
    assert "en/heldout_frames" in summary["per_variant"] and "zh/polite" in summary["per_variant"]
    assert json.loads((out / "eval.json").read_text(encoding="utf-8"))["eval_seed"] == 5
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "| en/typo |" in card and "## What fails" in card
    assert heldout_frame_list()[0] in card
    assert (out / EXAMPLES_PNG).stat().st_size > 0 and f"]({EXAMPLES_PNG})" in card
