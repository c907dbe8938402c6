"""`python -m model nano-data / eval-nano` end to end (tiny model, in-process)."""

import json

import pytest

from model.__main__ import main
from model.nano.build import build_nano_pipeline
from model.nano.world import CATEGORIES


def _run(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().out


def test_nano_data_pushes_candidates_to_curation(tmp_path, capsys):
    out = tmp_path / "data"
    code, text = _run(
        ["nano-data", str(out), "--count", "6", "--push-study", "nano", "--data-dir", str(tmp_path / "wb")],
        capsys,
    )
    assert code == 0 and "queued 6 new candidates" in text
    from workbench.service import Workbench

    wb = Workbench(data_dir=str(tmp_path / "wb"))
    wb.add_rater("ann")
    cand = wb.next_candidate("nano", "ann")
    assert cand["instruction"] and cand["filter_reason"] and cand["category"] in CATEGORIES
    # Pushing the same export again adds nothing new (keys are the target paths).
    _, text = _run(
        ["nano-data", str(out), "--count", "6", "--push-study", "nano", "--data-dir", str(tmp_path / "wb")],
        capsys,
    )
    assert "queued 0 new" in text
    assert cand["progress"]["total"] == wb.next_candidate("nano", "ann")["progress"]["total"]


@pytest.mark.slow
def test_eval_nano_json(tmp_path, capsys, tiny_config):
    build_nano_pipeline(tiny_config).save_pretrained(tmp_path / "m")
    code, text = _run(
        [
            "eval-nano",
            "--model",
            str(tmp_path / "m"),
            "--per-category",
            "1",
            "--categories",
            "color,tone",
            "--variants",
            "heldout_frames,typo",
            "--json",
        ],
        capsys,
    )
    summary = json.loads(text[text.index("{") :])
    assert summary["model"] == "step1x-edit-nano"
    assert set(summary["per_category"]) == {"color", "tone"}
    # The untrained model copies the source: no edit succeeds.
    assert summary["overall"]["success"] == 0.0 and summary["overall"]["seconds_per_edit"] > 0
    # One row per variant and language (no typo row for Chinese), each with its categories.
    assert list(summary["per_variant"]) == ["en/heldout_frames", "en/typo", "zh/heldout_frames"]
    assert all(set(v["per_category"]) == {"color", "tone"} for v in summary["per_variant"].values())
    assert all(v["n"] == 2 and v["success"] == 0.0 for v in summary["per_variant"].values())


def test_eval_nano_defaults_to_one_thread():
    import argparse

    from model.nano.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    assert parser.parse_args(["eval-nano"]).threads == 1
    assert parser.parse_args(["nano-ship", "runs/x"]).threads == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["eval-nano", "--variants", "shouting"])


def test_unknown_category_is_rejected(capsys):
    with pytest.raises(SystemExit):
        _run(["eval-nano", "--categories", "color,spin"], capsys)
    assert "unknown categories" in capsys.readouterr().err


def test_category_weight_parsing():
    from model.nano.cli import _category_weights

    assert _category_weights(["text=2", "texture=1.5"]) == {"text": 2.0, "texture": 1.5}
    for bad in (["spin=2"], ["text=two"], ["text=-1"]):
        with pytest.raises(SystemExit):
            _category_weights(bad)
