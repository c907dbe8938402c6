"""The Edit tab in Chromium, as a new user meets it: the embedded model's examples at the defaults, a photo,
and the edit flow (one progress bar, seed, Undo while an edit runs, download name, send to a study).

Screenshots go to test-artifacts/app/ (gitignored) for visual review.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "app"
SHARED_PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "step1x-examples"


@pytest.fixture(scope="module")
def nano_app(tmp_path_factory, launch_app_factory):
    """The app serving the embedded nano model with its settings and toy examples, as app.py starts it."""
    import torch

    from model.edit_settings import read_edit_settings
    from model.loading import load_editor
    from model.toy_examples import save_examples

    torch.set_num_threads(1)
    editor = load_editor(None, device="cpu")
    root = tmp_path_factory.mktemp("nano-app")
    examples = save_examples(root / "examples")
    demo, app = launch_app_factory(root, editor, examples=examples, edit_settings=read_edit_settings())
    yield app
    demo.close()
    app.workbench.close()


def new_page(browser, url: str):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.wait_for_selector("#edit-run")
    page.wait_for_function("window.__studioLoaded === true")
    return ctx, page, errors


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def shown_result(page) -> Image.Image:
    """The 'after' picture the slider shows, fetched as the browser fetched it."""
    src = page.locator("#edit-result img").nth(1).get_attribute("src")
    return Image.open(io.BytesIO(page.request.get(src).body()))


def test_each_example_is_edited_correctly_with_the_defaults(browser, nano_app):
    from playwright.sync_api import expect

    from model.nano.checks import check_edit
    from model.toy_examples import example_triplets

    ctx, page, errors = new_page(browser, nano_app.url)
    expect(page.locator("#edit-model-line")).to_contain_text("edits 32×32 toy scenes")
    expect(page.locator("#edit-model-line")).to_contain_text("--model stepfun-ai/Step1X-Edit")
    expect(page.locator("#edit-used-seed textarea, #edit-used-seed input")).to_have_value("")
    rows = page.locator("#edit-examples tbody tr")
    triplets = example_triplets()
    expect(rows).to_have_count(len(triplets))
    for i, triplet in enumerate(triplets):
        rows.nth(i).locator("td").first.click()
        expect(page.locator("#edit-instruction textarea")).to_have_value(triplet.instruction)
        page.locator("#edit-run").click()
        expect(page.locator("#edit-history img")).to_have_count(i + 1, timeout=60_000)
        result = check_edit(triplet, shown_result(page))
        assert result.success, f"example {i} ({triplet.instruction}): {result.reason}"
        expect(page.locator("#edit-notice")).not_to_contain_text("reduced")
        if i == 0:
            shot(page, "edit-nano-example")
    shot(page, "edit-nano-examples-done")
    ctx.close()
    assert not errors, errors


def photo(tmp_path: Path) -> Path:
    """A real photo when the shared examples are present, else a generated photo-like 1024x1536 picture."""
    if SHARED_PHOTOS.is_dir():
        return sorted(SHARED_PHOTOS.glob("*.jpg"))[0]
    y, x = np.mgrid[0:1536, 0:1024] / 1024.0
    smooth = np.stack([np.sin(3 * x + y), np.cos(2 * y - x), np.sin(x * y * 4)], -1) * 90 + 128
    noisy = smooth + np.random.default_rng(0).normal(0, 12, smooth.shape)
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def test_a_photo_gets_a_notice_and_a_small_crisp_result(browser, nano_app, tmp_path):
    from playwright.sync_api import expect

    ctx, page, errors = new_page(browser, nano_app.url)
    path = photo(tmp_path)
    width, height = Image.open(path).size
    page.locator("#edit-input input[type=file]").set_input_files(str(path))
    page.locator("#edit-instruction textarea").fill("make the background white")
    page.locator("#edit-run").click()
    expect(page.locator("#edit-notice")).to_contain_text("edits 32×32 toy scenes", timeout=60_000)
    expect(page.locator("#edit-notice")).to_contain_text("your photo")
    expect(page.locator("#edit-notice")).to_contain_text("was reduced")
    shown = shown_result(page)
    assert 128 <= max(shown.size) <= 256 and abs(shown.width / shown.height - width / height) < 0.25
    shot(page, "edit-nano-photo")
    ctx.close()
    assert not errors, errors


def test_edit_flow_one_progress_bar_undo_locked_download_name_and_study(browser, launched):
    """Default settings of the tiny random pipeline (official: 28 steps at 512) take long enough on the CPU
    to look at the page while the edit runs."""
    from playwright.sync_api import expect

    from model.nano.world import random_scene, render

    ctx, page, errors = new_page(browser, launched.url)
    src = launched.root / "flow.png"
    render(random_scene(random.Random(3)), 64).save(src)
    expect(page.locator("#edit-used-seed textarea, #edit-used-seed input")).to_have_value("")
    page.locator("#edit-input input[type=file]").set_input_files(str(src))
    page.locator("#edit-instruction textarea").fill("把红色的圆形变成蓝色")
    page.locator("#edit-run").click()
    expect(page.locator("#edit-undo")).to_be_disabled(timeout=5_000)
    expect(page.locator("#edit-run")).to_be_disabled()
    expect(page.locator(".progress-text")).to_have_count(1, timeout=30_000)
    shot(page, "edit-running")
    expect(page.locator("#edit-history img")).to_have_count(1, timeout=180_000)
    expect(page.locator("#edit-undo")).to_be_enabled()
    seed = page.locator("#edit-used-seed textarea, #edit-used-seed input").input_value()
    assert seed.isdigit()
    with page.expect_download() as download:
        page.locator("#edit-download").click()
    assert download.value.suggested_filename == f"edit-{seed}-1.png"

    page.get_by_text("Send to a study (opt-in)").click()
    page.locator("#edit-category input").fill("color_alter")
    page.locator("#edit-category input").press("Enter")
    page.locator("#edit-send-password input").fill(launched.settings.admin_password)  # curators only
    page.locator("#edit-send").click()
    expect(page.get_by_text("Recorded in study")).to_be_visible(timeout=30_000)
    shot(page, "edit-sent")
    ctx.close()
    assert not errors, errors
    with launched.workbench.db.engine.connect() as conn:
        row = conn.execute(
            sa.text("select language, category from curation_candidates order by id desc limit 1")
        ).one()
    assert tuple(row) == ("zh", "color_alter")
