"""`python -m model edit` (single and resumable batch) and the subcommand registry, run in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from model.__main__ import build_parser, main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_pipe):
    folder = tmp_path_factory.mktemp("tiny-model")
    tiny_pipe.save_pretrained(folder)
    return folder


def _photo(path, seed: int, size=(72, 56)) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


FAST = ["--steps", "2", "--size-level", "48"]


def test_subcommands_registered() -> None:
    names = set(build_parser()._subparsers._group_actions[0].choices)
    assert {"edit", "inspect", "nano-data", "train", "eval-nano"} <= names


def test_single_edit(model_dir, tmp_path, capsys) -> None:
    _photo(tmp_path / "in.png", 0)
    out = tmp_path / "out" / "edited.png"
    argv = ["edit", "--image", str(tmp_path / "in.png"), "--instruction", "make it red", "--out", str(out)]
    assert main([*argv, "--model", str(model_dir), "--seed", "3", *FAST]) == 0
    assert Image.open(out).size == (72, 56)
    assert "seed 3" in capsys.readouterr().out


def test_single_edit_errors(model_dir, tmp_path, capsys) -> None:
    (tmp_path / "bad.png").write_bytes(b"not an image")
    argv = [
        "edit",
        "--image",
        str(tmp_path / "bad.png"),
        "--instruction",
        "x",
        "--out",
        str(tmp_path / "o.png"),
    ]
    assert main([*argv, "--model", str(model_dir), *FAST]) == 2
    assert "not a readable image" in capsys.readouterr().err
    assert main(["edit", "--image", str(tmp_path / "bad.png")]) == 2  # incomplete arguments
    _photo(tmp_path / "ok.png", 1)
    argv = [
        "edit",
        "--image",
        str(tmp_path / "ok.png"),
        "--instruction",
        "x",
        "--out",
        str(tmp_path / "o.png"),
    ]
    assert main([*argv, "--model", str(tmp_path / "no-such-model")]) == 2
    assert "cannot load model" in capsys.readouterr().err


def test_batch_is_resumable(model_dir, tmp_path, capsys) -> None:
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for i in range(3):
        _photo(inputs / f"{i}.png", i)
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    jobs = {"0.png": "make it red", "1.png": "把天空变成绿色", "2.png": "add a hat", "broken.png": "x"}
    (tmp_path / "jobs.json").write_text(json.dumps(jobs, ensure_ascii=False), encoding="utf-8")
    argv = [
        "edit",
        "--json",
        str(tmp_path / "jobs.json"),
        "--input-dir",
        str(inputs),
        "--output-dir",
        str(outputs),
    ]
    argv += ["--model", str(model_dir), *FAST]

    assert main(argv) == 1  # one input is broken; the others are done
    assert sorted(p.name for p in outputs.iterdir()) == ["0.png", "1.png", "2.png"]
    first = (outputs / "0.png").read_bytes()
    (outputs / "2.png").unlink()  # as if the run had been interrupted before this one
    capsys.readouterr()
    assert main(argv) == 1
    assert "2 of 4 already done; 2 to edit" in capsys.readouterr().out
    assert (outputs / "2.png").is_file() and (outputs / "0.png").read_bytes() == first
    assert not list(outputs.glob(".*partial*"))


def test_batch_rejects_malformed_json(tmp_path, capsys) -> None:
    (tmp_path / "jobs.json").write_text('["a.png"]')
    argv = [
        "edit",
        "--json",
        str(tmp_path / "jobs.json"),
        "--input-dir",
        str(tmp_path),
        "--output-dir",
        str(tmp_path),
    ]
    assert main(argv) == 2
    assert "must be a JSON object" in capsys.readouterr().err


@pytest.mark.parametrize("version", ["v1.0", "v1.1"])
def test_left_out_options_are_the_models_declared_settings(tiny_pipe, version) -> None:
    """v1.0 runs with the cut-off of its release (1.0), v1.1 with 0.93; steps, CFG, size: the model's."""
    from model.__main__ import _edit_kwargs
    from model.tiny import tiny_pipeline

    pipe = tiny_pipeline(seed=0, version=version)
    args = build_parser().parse_args(["edit", "--image", "i.png", "--instruction", "x", "--out", "o.png"])
    kwargs = _edit_kwargs(args, pipe, seed=1)
    truncate = {"v1.0": 1.0, "v1.1": 0.93}[version]
    assert (kwargs["num_inference_steps"], kwargs["guidance_scale"], kwargs["size_level"]) == (28, 6.0, 512)
    assert kwargs["timesteps_truncate"] == truncate
    args = build_parser().parse_args(["edit", "--steps", "3", "--timesteps-truncate", "0.5", "--cfg", "-1"])
    kwargs = _edit_kwargs(args, pipe, seed=1)
    assert (kwargs["num_inference_steps"], kwargs["timesteps_truncate"], kwargs["guidance_scale"]) == (
        3,
        0.5,
        -1,
    )


def test_the_embedded_model_edits_at_its_own_settings_by_default(tmp_path, capsys) -> None:
    """No sampling options: one step at size level 32 without CFG, and the toy edit is right."""
    from model.nano.checks import check_edit
    from model.toy_examples import example_triplet

    triplet = example_triplet("color", "en", 1)
    triplet.source.save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    argv = [
        "edit",
        "--image",
        str(tmp_path / "in.png"),
        "--instruction",
        triplet.instruction,
        "--out",
        str(out),
    ]
    assert main([*argv, "--seed", "5"]) == 0
    assert check_edit(triplet, Image.open(out)).success
