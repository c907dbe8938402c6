"""The Edit tab with the embedded nano model: its settings, its examples at the defaults, photos reduced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.edit_settings import read_edit_settings
from model.nano.checks import check_edit
from model.toy_examples import EXAMPLES, example_triplets, save_examples
from workbench.ui import AppSettings, edit
from workbench.ui.context import UIContext

SHARED_PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "step1x-examples"


@pytest.fixture(scope="module")
def nano():
    import torch

    from model.loading import load_editor

    torch.set_num_threads(1)
    pipe = load_editor(None, device="cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def nano_ctx(nano, workbench, tmp_path):
    settings = AppSettings(data_dir=tmp_path / "data", demo_study=False, edit_settings=read_edit_settings())
    settings.examples = save_examples(tmp_path / "data" / "examples")
    return UIContext(settings=settings, editor=nano, workbench=workbench)


def photo_path(tmp_path: Path) -> Path:
    """A real photo when the shared examples are present, else a generated photo-like 1024x1536 picture."""
    if SHARED_PHOTOS.is_dir():
        return sorted(SHARED_PHOTOS.glob("*.jpg"))[0]
    y, x = np.mgrid[0:1536, 0:1024] / 1024.0
    rng = np.random.default_rng(0)
    smooth = np.stack([np.sin(3 * x + y), np.cos(2 * y - x), np.sin(x * y * 4)], -1) * 90 + 128
    pixels = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
    path = tmp_path / "photo.jpg"
    Image.fromarray(pixels).save(path, quality=90)
    return path


def default_edit(ctx: UIContext, image: str, instruction: str, seed: int):
    """One edit with the tab's default settings (what a user gets without opening Advanced settings)."""
    s = edit.edit_settings(ctx)
    return edit.run_edit(ctx, image, instruction, s.steps, s.guidance, seed, False, s.size_level, [])


def test_the_embedded_model_declares_its_own_settings():
    settings = read_edit_settings()
    assert (settings.steps, settings.cfg_applies, settings.size_levels) == (1, False, (32,))
    assert settings.native_size == 32 and settings.side_multiple == 8
    with pytest.raises(ValueError, match="size level 32"):
        settings.check(1, 512)


def test_examples_cover_categories_in_both_languages():
    assert len({category for category, _, _ in EXAMPLES}) >= 6
    assert {language for _, language, _ in EXAMPLES} == {"en", "zh"}
    assert all(t.language == lang for t, (_, lang, _) in zip(example_triplets(), EXAMPLES, strict=True))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_example_is_edited_correctly_at_the_defaults(nano_ctx, seed):
    """Catches a retrained model that gets an example wrong: the examples must then be chosen again."""
    for (path, instruction), triplet in zip(nano_ctx.settings.examples, example_triplets(), strict=True):
        (before, after), _, download, _, notice = default_edit(nano_ctx, path, instruction, seed)
        result = check_edit(triplet, Image.open(after))
        assert result.success, f"{instruction!r} (seed {seed}): {result.reason}"
        assert notice == "" and Image.open(after).size == (256, 256)
        assert Image.open(download).tobytes() == Image.open(after).tobytes()


def test_a_photo_is_reduced_with_a_notice_and_shown_at_a_sensible_size(nano_ctx, tmp_path):
    path = photo_path(tmp_path)
    width, height = Image.open(path).size
    (before, after), _, _, _, notice = default_edit(nano_ctx, str(path), "make the background white", 3)
    assert "edits 32×32 toy scenes" in notice and "your photo" in notice and "was reduced" in notice
    shown = Image.open(after).size
    assert Image.open(before).size == shown and max(shown) <= 256 and max(shown) >= 128
    assert abs(shown[0] / shown[1] - width / height) < 0.25  # the aspect ratio survives
