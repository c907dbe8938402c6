"""Real-browser tests: Playwright drives Debian's Chromium through Edit, Rate (mouse and keyboard) and Curate.

Screenshots go to test-artifacts/app/ (gitignored) for visual review.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "app"


@pytest.fixture
def page(browser, launched):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("dialog", lambda d: (errors.append(f"dialog opened: {d.message}"), d.dismiss()))
    pg.set_default_timeout(60_000)  # two shared CPU cores: be patient, not flaky
    open_app(pg, launched.url)
    yield pg
    ctx.close()
    assert not errors, errors


def open_app(page, url: str | None = None) -> None:
    """Load (or reload) the app and wait until Gradio has rendered it and run the page-load events."""
    if url is None:
        page.reload()
    else:
        page.goto(url)
    page.wait_for_selector("#edit-run")
    page.wait_for_function("window.__studioLoaded === true")
    page.wait_for_timeout(500)


def shot(page, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def expect_status(page, elem_id: str, text: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator(f"#{elem_id}")).to_contain_text(text, timeout=30_000)


def test_edit_tab(page, tmp_path, make_scene):
    from playwright.sync_api import expect

    src = tmp_path / "photo.png"
    make_scene(7, 96).save(src)
    page.locator("#edit-input input[type=file]").set_input_files(str(src))
    page.locator("#edit-instruction textarea").fill("make the blocks red")
    page.get_by_text("Advanced settings").click()
    page.locator("#edit-steps input[type=number]").fill("3")
    page.locator("#edit-run").click()
    expect(page.locator("#edit-result img")).to_have_count(2, timeout=120_000)
    expect(page.locator("#edit-used-seed textarea, #edit-used-seed input")).not_to_have_value(
        "", timeout=10_000
    )
    expect(page.locator("#edit-history img")).to_have_count(1)
    shot(page, "edit")
    page.locator("#edit-continue").click()
    page.locator("#edit-undo").click()
    expect(page.locator("#edit-history img")).to_have_count(0, timeout=10_000)


def test_edit_bad_inputs_show_messages(page, tmp_path, make_scene):
    from PIL import Image

    page.locator("#edit-run").click()
    expect_toast(page, "type an instruction")
    page.locator("#edit-instruction textarea").fill("make it red")
    page.locator("#edit-run").click()
    expect_toast(page, "upload an image")
    junk = tmp_path / "notes.png"
    junk.write_text("not a picture")
    page.locator("#edit-input input[type=file]").set_input_files(str(junk))
    page.locator("#edit-instruction textarea").fill("make it red")
    page.locator("#edit-run").click()
    expect_toast(page, "not a readable image")
    huge = tmp_path / "huge.png"
    Image.new("1", (30000, 30000)).save(huge)
    open_app(page)
    page.locator("#edit-input input[type=file]").set_input_files(str(huge))
    page.locator("#edit-instruction textarea").fill("make it red")
    page.locator("#edit-run").click()
    expect_toast(page, "too large")
    shot(page, "edit-bad-input")
    ok = tmp_path / "ok.png"
    make_scene(2).save(ok)
    open_app(page)
    page.locator("#edit-input input[type=file]").set_input_files(str(ok))
    page.locator("#edit-run").click()
    expect_toast(page, "type an instruction")


def expect_toast(page, text: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator(".toast-body").filter(has_text=text).first).to_be_visible(timeout=60_000)


def start_rating(page, handle: str) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Rate", exact=True).click()
    page.locator("#rate-handle input, #rate-handle textarea").first.fill(handle)
    page.locator("#rate-start").click()
    expect(page.locator("#rate-viewer .sx-pane")).to_have_count(3, timeout=30_000)
    page.wait_for_function(
        "[...document.querySelectorAll('#rate-viewer img.sx-main')].every(i => i.complete && i.naturalWidth > 0)"
    )


def test_rate_with_mouse_zoom_and_modes(page):
    from playwright.sync_api import expect

    start_rating(page, "mouse-rater")
    expect(page.locator("#rate-progress")).to_contain_text("Item 1 of 3")
    assert "system-" not in page.content()
    frame = page.locator("#rate-viewer .sx-frame").nth(1)
    frame.hover()
    page.mouse.wheel(0, -300)
    transforms = page.eval_on_selector_all("#rate-viewer .sx-layer", "els => els.map(e => e.style.transform)")
    assert len(set(transforms)) == 1 and "scale(1.25)" in transforms[0]  # all three panes zoomed together
    page.get_by_role("button", name="Difference").click()
    page.wait_for_function("document.querySelector('#rate-viewer canvas.sx-diff').width > 0")
    shot(page, "rate-difference")
    page.get_by_role("button", name="Difference").click()
    page.get_by_role("button", name="Flicker").click()
    page.wait_for_function(
        "document.querySelector('#rate-viewer .sx-viewer').classList.contains('sx-show-source')"
    )
    page.get_by_role("radio", name="A (left)").click()
    page.get_by_text("Optional: scores").click()
    page.locator("#rate-comment textarea").fill('<script>alert("x")</script> looks <b>fine</b>')
    page.locator("#rate-submit").click()
    expect_status(page, "rate-status", "Saved")
    expect(page.locator("#rate-progress")).to_contain_text("Item 2 of 3")
    shot(page, "rate")


def test_rate_with_keyboard(page):
    from playwright.sync_api import expect

    start_rating(page, "keyboard-rater")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("2")
    expect(page.get_by_role("radio", name="B (right)")).to_be_checked()
    page.keyboard.press("Enter")
    expect_status(page, "rate-status", "Saved")
    expect(page.locator("#rate-progress")).to_contain_text("1 done")
    page.keyboard.press("u")
    expect_status(page, "rate-status", "undone")
    expect(page.locator("#rate-progress")).to_contain_text("0 done")
    page.keyboard.press("s")
    expect_status(page, "rate-status", "Skipped")
    # Typing in a field must not trigger shortcuts.
    page.get_by_text("Optional: scores").click()
    page.locator("#rate-comment textarea").fill("")
    page.locator("#rate-comment textarea").press("1")
    expect(page.get_by_role("radio", name="A (left)")).not_to_be_checked()
    shot(page, "rate-keyboard")


def test_curate_tab(page, admin_password):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Curate", exact=True).click()
    page.locator("#curate-handle input, #curate-handle textarea").first.fill("browser-curator")
    page.locator("#curate-start").click()
    expect_toast(page, "curator")  # no password yet
    page.locator("#curate-password input").fill(admin_password)
    page.locator("#curate-start").click()
    expect(page.locator("#curate-viewer .sx-pane")).to_have_count(2, timeout=30_000)
    expect(page.locator("#curate-filter")).to_contain_text("Filter score")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("a")
    expect_status(page, "curate-status", "Accepted")
    page.locator("#curate-reject").click()
    expect_toast(page, "reason")
    page.get_by_label("artifacts").check()
    page.locator("#curate-reject").click()
    expect_status(page, "curate-status", "Rejected")
    shot(page, "curate")
    page.keyboard.press("u")
    expect_status(page, "curate-status", "undone")


def test_results_and_admin_tabs(page, admin_password, launched):
    from playwright.sync_api import expect

    wb = launched.workbench
    calls = []
    compute = wb.stats
    wb.stats = lambda *a, **k: (calls.append(1), compute(*a, **k))[1]  # count server-side computations
    for i, rater in enumerate(("res-a", "res-b", "res-c")):
        wb.add_rater(rater)
        while (shown := wb.next_item("pref", rater)) is not None:
            wb.submit_vote(
                shown["impression_id"],
                rater,
                ("A", "B", "tie")[i],
                idempotency_key=f"{rater}-{shown['impression_id']}",
            )

    page.get_by_role("tab", name="Admin", exact=True).click()
    page.locator("#admin-password input").fill(admin_password)
    page.get_by_text("Raters", exact=True).click()
    page.locator("#admin-handles textarea").fill("new-rater-1\nnew-rater-2")
    page.locator("#admin-add-raters").click()
    expect(page.get_by_text("Added 2 rater(s).")).to_be_visible()
    page.get_by_role("tab", name="Results", exact=True).click()
    page.locator("#results-password input").fill(admin_password)
    page.locator("#results-refresh").click()
    expect(page.locator("#results-table-leaderboard")).to_contain_text("system-", timeout=120_000)
    expect(page.locator("#results-leaderboard img").first).to_be_visible()
    expect(page.locator("#results-heatmap img").first).to_be_visible()
    assert len(calls) == 1
    shot(page, "results")
