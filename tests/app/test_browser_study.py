"""Real-browser tests of study life: rater links, sign-in kept across a reload, tabs in the browser history, a
rating screen that fits a laptop (1366x768) and a phone (390x844, pinch-zoom), completion codes, Results tables.

Screenshots go to test-artifacts/app/ (gitignored) for visual review.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "app"
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
PROLIFIC = "PROLIFIC_PID=5f1a2b3c4d5e6f7a8b9c0d1e&STUDY_ID=study-42&SESSION_ID=session-7"


@pytest.fixture(scope="module")
def portrait_study(launched) -> str:
    """A preference study whose images are twice as tall as wide."""
    wb = launched.workbench
    wb.create_study("portrait", kind="preference", k=2)
    rng = np.random.default_rng(3)
    for i in range(2):
        src, *outs = (
            Image.fromarray(rng.integers(0, 255, (8, 4, 3), dtype=np.uint8)).resize((96, 192))
            for _ in range(3)
        )
        wb.add_item("portrait", src, f"tall edit {i}", outputs={f"p-{j}": o for j, o in enumerate(outs)})
    return "portrait"


def new_page(browser, viewport: dict, mobile: bool = False):
    from playwright.sync_api import expect

    # Two shared CPU cores: a round trip can take seconds under load, so assertions wait up to 30 s.
    expect.set_options(timeout=30_000)
    ctx = browser.new_context(viewport=viewport, is_mobile=mobile, has_touch=mobile)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(60_000)  # two shared CPU cores: be patient, not flaky
    return ctx, page, errors


def open_url(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("window.__studioLoaded === true")


def wait_viewer(page, host: str, panes: int) -> None:
    from playwright.sync_api import expect

    expect(page.locator(f"#{host} .sx-pane")).to_have_count(panes, timeout=60_000)
    page.wait_for_function(
        f"[...document.querySelectorAll('#{host} img.sx-main')].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.wait_for_timeout(300)  # the fit runs on the next animation frame


def shot(page, name: str, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def selected_tab(page) -> str:
    return page.locator("#studio-tabs button[role=tab][aria-selected=true]").first.get_attribute(
        "data-tab-id"
    )


def assert_in_viewport(page, selectors: list[str]) -> None:
    """Every element is fully on screen with the page scrolled to the top."""
    size = page.viewport_size
    assert page.evaluate("window.scrollY") == 0
    for sel in selectors:
        for i, el in enumerate(page.locator(sel).all()):
            box = el.bounding_box()
            assert box is not None, f"{sel}[{i}] is not rendered"
            inside = box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= size["width"] + 0.5
            assert inside and box["y"] + box["height"] <= size["height"] + 0.5, (
                f"{sel}[{i}] at {box} is off {size}"
            )


def test_rater_link_signs_in_opens_rate_and_survives_reload(browser, launched):
    from playwright.sync_api import expect

    ctx, page, errors = new_page(browser, LAPTOP)
    open_url(page, f"{launched.url}?study=pref&{PROLIFIC}")
    wait_viewer(page, "rate-viewer", 3)
    assert selected_tab(page) == "rate" and page.url.endswith("#rate")
    expect(page.locator("#rate-status")).to_contain_text("Signed in as 5f1a2b3c4d5e6f7a8b9c0d1e")
    item = page.locator("#rate-instruction").inner_text()
    shot(page, "rate-link")
    visits = launched.workbench.rater_sessions("pref")  # kept for matching answers to Prolific's submissions
    assert [(v["rater"], v["external_study"], v["session"]) for v in visits] == [
        ("5f1a2b3c4d5e6f7a8b9c0d1e", "study-42", "session-7")
    ]

    open_url(page, f"{launched.url}#rate")  # a reload without the link's parameters
    wait_viewer(page, "rate-viewer", 3)
    assert selected_tab(page) == "rate"
    expect(page.locator("#rate-handle input, #rate-handle textarea").first).to_have_value(
        "5f1a2b3c4d5e6f7a8b9c0d1e"
    )
    assert page.locator("#rate-instruction").inner_text() == item  # resumed on the same item

    # Back and Forward move between tabs inside the app.
    page.get_by_role("tab", name="Results", exact=True).click()
    page.wait_for_url("**#results")
    page.go_back()
    page.wait_for_url("**#rate")
    expect(page.locator("button[role=tab][data-tab-id=rate]")).to_have_attribute("aria-selected", "true")
    page.go_forward()
    expect(page.locator("button[role=tab][data-tab-id=results]")).to_have_attribute("aria-selected", "true")
    ctx.close()
    assert not errors, errors


def test_plain_rater_link_vote_undo_preselects(browser, launched):
    from playwright.sync_api import expect

    ctx, page, errors = new_page(browser, LAPTOP)
    open_url(page, f"{launched.url}?study=pref&rater=link-rater")
    wait_viewer(page, "rate-viewer", 3)
    expect(page.locator("#rate-progress")).to_contain_text("Item 1 of 3")
    page.get_by_role("radio", name="B (right)").click()
    page.locator("#rate-submit").click()
    expect(page.locator("#rate-progress")).to_contain_text("Item 2 of 3")
    expect(page.get_by_role("radio", name="B (right)")).not_to_be_checked()
    page.locator("#rate-undo").click()
    expect(page.locator("#rate-status")).to_contain_text("undone")
    expect(page.get_by_role("radio", name="B (right)")).to_be_checked()  # the withdrawn answer, pre-selected
    page.locator("#rate-skip").click()  # the undone item is open again, so it can be skipped
    expect(page.locator("#rate-status")).to_contain_text("Skipped")
    expect(page.locator("#rate-progress")).to_contain_text("Item 1 of 2")  # skipped items leave the total
    ctx.close()
    assert not errors, errors


@pytest.mark.parametrize("study", ["pref", "portrait"])
def test_rate_fits_a_laptop_screen(browser, launched, portrait_study, study):
    ctx, page, errors = new_page(browser, LAPTOP)
    open_url(page, f"{launched.url}?study={study}&rater=fit-{study}#rate")
    wait_viewer(page, "rate-viewer", 3)
    assert_in_viewport(page, ["#rate-viewer .sx-frame", "#rate-viewer img.sx-main", "#rate-choice", "#rate-submit",
                              "#rate-undo", "#rate-skip", "#rate-instruction", "#rate-progress"])  # fmt: skip
    frame = page.locator("#rate-viewer .sx-frame").first.bounding_box()
    assert frame["height"] >= 250  # the images get the room, not a thumbnail
    if study == "portrait":
        assert frame["height"] == pytest.approx(2 * frame["width"], rel=0.02)  # fitted, not cut off
    shot(page, f"rate-1366x768-{study}")
    ctx.close()
    assert not errors, errors


def test_curate_fits_a_laptop_screen(browser, launched, admin_password):
    from playwright.sync_api import expect

    ctx, page, errors = new_page(browser, LAPTOP)
    open_url(page, f"{launched.url}#curate")
    expect(page.locator("button[role=tab][data-tab-id=curate]")).to_have_attribute("aria-selected", "true")
    page.locator("#curate-handle input, #curate-handle textarea").first.fill("fit-curator")
    page.locator("#curate-password input").fill(admin_password)
    page.locator("#curate-start").click()
    wait_viewer(page, "curate-viewer", 2)
    expect(page.get_by_label("Over edit identity change")).to_be_visible()  # reasons in words
    assert_in_viewport(page, ["#curate-viewer .sx-frame", "#curate-viewer img.sx-main", "#curate-reasons",
                              "#curate-accept", "#curate-reject", "#curate-flag", "#curate-undo"])  # fmt: skip
    shot(page, "curate-1366x768")
    page.get_by_label("Artifacts").check()
    page.locator("#curate-note input, #curate-note textarea").first.fill("seam on the left")
    page.locator("#curate-reject").click()
    expect(page.locator("#curate-status")).to_contain_text("Rejected")
    expect(page.get_by_label("Artifacts")).not_to_be_checked()
    page.locator("#curate-undo").click()
    expect(page.get_by_label("Artifacts")).to_be_checked()  # the withdrawn reasons and note come back
    expect(page.locator("#curate-note input, #curate-note textarea").first).to_have_value("seam on the left")
    ctx.close()
    assert not errors, errors


def pinch(page, frame, spread: float) -> None:
    """Two fingers on `frame` move `spread` px apart each, through real touch events (Chrome DevTools)."""
    box = frame.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)

    def touch(kind: str, d: float) -> None:
        points = (
            [] if kind == "touchEnd" else [{"x": cx - d, "y": cy, "id": 0}, {"x": cx + d, "y": cy, "id": 1}]
        )
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", 20)
    for step in range(1, 6):
        touch("touchMove", 20 + spread * step / 5)
    touch("touchEnd", 0)


def test_phone_stacks_images_and_pinch_zooms_in_sync(browser, launched):
    ctx, page, errors = new_page(browser, PHONE, mobile=True)
    open_url(page, f"{launched.url}?study=pref&rater=phone-rater")
    wait_viewer(page, "rate-viewer", 3)
    boxes = [f.bounding_box() for f in page.locator("#rate-viewer .sx-frame").all()]
    for upper, lower in zip(boxes, boxes[1:], strict=False):
        assert lower["y"] >= upper["y"] + upper["height"]  # stacked, one under the other
    assert all(b["width"] >= 0.9 * PHONE["width"] for b in boxes)  # full width, not 95 px thumbnails
    shot(page, "rate-390x844")
    output_a = page.locator("#rate-viewer .sx-frame").nth(1)
    output_a.scroll_into_view_if_needed()
    pinch(page, output_a, 60)
    transforms = page.eval_on_selector_all("#rate-viewer .sx-layer", "els => els.map(e => e.style.transform)")
    assert len(set(transforms)) == 1 and "scale(1)" not in transforms[0] and "scale(" in transforms[0]
    scale = float(page.eval_on_selector("#rate-viewer .sx-viewer", "v => v.dataset.scale"))
    assert 2 < scale <= 32  # fingers 40 px apart moved to 160 px: about 4x
    shot(page, "rate-390x844-pinched")
    ctx.close()
    assert not errors, errors


def test_quota_done_shows_completion_code(browser, launched, monkeypatch):
    from playwright.sync_api import expect

    wb = launched.workbench
    info = wb.study_info
    code, url = "STUDIO-7F3A", "https://example.org/complete?cc=STUDIO-7F3A"
    monkeypatch.setattr(wb, "study_info", lambda s: {**info(s), "quota": 1, "completion_code": code,
                                                     "redirect_url": url})  # fmt: skip
    answered = set()
    monkeypatch.setattr(wb, "rater_quota_done", lambda study, handle: handle in answered, raising=False)
    ctx, page, errors = new_page(browser, LAPTOP)
    open_url(page, f"{launched.url}?study=pref&rater=quota-rater")
    wait_viewer(page, "rate-viewer", 3)
    page.get_by_role("radio", name="Tie").click()
    answered.add("quota-rater")
    page.locator("#rate-submit").click()
    expect(page.locator("#completion-code")).to_have_text(code)
    expect(page.locator("#completion-link")).to_have_attribute("href", url)
    expect(page.locator("#rate-viewer .sx-pane")).to_have_count(0)
    expect(page.locator("#rate-submit")).to_be_hidden()  # nothing left to answer; Undo stays
    expect(page.locator("#rate-undo")).to_be_visible()
    shot(page, "rate-completion")
    ctx.close()
    assert not errors, errors


def test_results_tables_are_labelled(browser, launched, admin_password, make_scene):
    from playwright.sync_api import expect

    wb = launched.workbench
    wb.create_study(
        "labelled", kind="preference", k=3
    )  # one pair of systems: every item is rated three times
    for i in range(3):
        outputs = {"system-x": make_scene(300 + i), "system-y": make_scene(400 + i)}
        wb.add_item("labelled", make_scene(500 + i), f"label edit {i}", outputs=outputs, category="color")
    for i, rater in enumerate(("lbl-a", "lbl-b", "lbl-c")):
        wb.add_rater(rater)
        while (shown := wb.next_item("labelled", rater)) is not None:
            key = f"{rater}-{shown['impression_id']}"
            wb.submit_vote(shown["impression_id"], rater, ("A", "A", "tie")[i], idempotency_key=key)
    ctx, page, errors = new_page(browser, PHONE, mobile=True)
    open_url(page, f"{launched.url}#results")
    for name in ("leaderboard", "agreement"):  # before Compute: a sentence, not "1 2 3" headers
        expect(page.locator(f"#results-table-{name}")).to_contain_text("press Compute")
    page.locator("#results-study input").click()
    page.get_by_role("option", name="labelled", exact=True).click()
    page.locator("#results-password input").fill(admin_password)
    page.locator("#results-refresh").click()
    expect(page.locator("#results-table-leaderboard")).to_contain_text("system-", timeout=120_000)
    agreement = page.locator("#results-table-agreement")
    for header in ("Metric", "Value", "CI low (95%)", "CI high (95%)", "n (items rated twice or more)"):
        expect(agreement.get_by_role("columnheader", name=header)).to_be_visible()
    expect(agreement).to_contain_text("Krippendorff's alpha (nominal)")
    expect(page.locator("#results-table-leaderboard")).to_contain_text("Win rate (ties and both bad = ½ win)")
    expect(page.locator("#results-definitions")).to_contain_text("ties and both bad left out")
    page.get_by_role("button", name="Per category").click()
    expect(page.locator("#results-table-per_category")).to_contain_text("not enough data")
    page.get_by_role("button", name="Curation: reasons cited").click()
    expect(page.locator("#results-table-reasons")).to_contain_text("Curation studies only")
    # No block label over the plot: its title is drawn inside the figure, clear of the system names.
    plot = page.locator("#results-leaderboard")
    expect(plot.locator("img").first).to_be_visible()
    assert plot.locator("label:visible, .block-label:visible").count() == 0
    assert plot.bounding_box()["width"] >= 0.9 * (PHONE["width"] - 16)  # plots stack at full width
    shot(page, "results-390x844", full_page=True)
    ctx.close()
    assert not errors, errors


def test_admin_gives_the_rater_link_and_reports_known_raters(browser, launched, admin_password):
    from playwright.sync_api import expect

    ctx, page, errors = new_page(browser, LAPTOP)
    open_url(page, f"{launched.url}#admin")
    page.locator("#admin-password input").fill(admin_password)
    page.get_by_role("button", name="Raters").click()
    page.locator("#admin-handles textarea").fill("known-1\nknown-2")
    page.locator("#admin-add-raters").click()
    expect(page.get_by_text("Added 2 rater(s).")).to_be_visible()
    page.locator("#admin-handles textarea").fill("known-2\nknown-3")
    page.locator("#admin-add-raters").click()
    expect(page.get_by_text("Added 1 rater(s). Already present, unchanged: known-2 (rater).")).to_be_visible()
    page.get_by_role("button", name="Manage a study").click()
    expect(page.locator("#admin-claims")).to_contain_text("Pick a study and press Show")  # not "1 2 3"
    page.locator("#admin-study input").click()
    page.get_by_role("option", name="pref", exact=True).click()
    page.locator("#admin-links").click()
    links = page.locator("#admin-rater-links")
    expect(links).to_contain_text("PROLIFIC_PID={{%PROLIFIC_PID%}}")
    plain = links.locator("code").first.inner_text()
    assert plain.startswith(launched.url) and plain.endswith("?study=pref&rater=")
    shot(page, "admin-rater-links")
    open_url(page, plain + "known-3")  # the link as a rater would open it
    wait_viewer(page, "rate-viewer", 3)
    assert selected_tab(page) == "rate"
    ctx.close()
    assert not errors, errors


def test_nothing_free_while_another_rater_holds_the_last_item(browser, launched):
    from playwright.sync_api import expect

    wb = launched.workbench
    wb.create_study("held", kind="preference", k=1)
    rng = np.random.default_rng(7)
    for i in range(2):
        src, *outs = (Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(3))
        wb.add_item("held", src, f"held edit {i}", outputs={f"h-{j}": o for j, o in enumerate(outs)})
    wb.add_rater("held-a")
    wb.next_item("held", "held-a")  # another rater's open screen holds one of the two items
    ctx, page, errors = new_page(browser, LAPTOP)
    open_url(page, f"{launched.url}?study=held&rater=held-b")
    wait_viewer(page, "rate-viewer", 3)
    page.get_by_role("radio", name="Tie").click()
    page.locator("#rate-submit").click()
    held = page.locator(".held-by-others")
    expect(held).to_contain_text("Nothing free for you right now")
    expect(held).to_contain_text("1 item is being answered by other people")
    expect(page.locator("#rate-viewer .sx-pane")).to_have_count(0)
    shot(page, "rate-held-by-others")
    wb.release_claims("held", "held-a")  # the other rater left: the item is free again
    page.locator("#rate-start").click()
    wait_viewer(page, "rate-viewer", 3)
    expect(held).to_have_count(0)
    ctx.close()
    assert not errors, errors


def test_curate_two_tabs_ask_before_replacing(browser, launched, admin_password):
    from playwright.sync_api import expect

    from tests.app.test_browser import expect_status, pick_study
    from workbench.study_frames import decisions_frame

    wb = launched.workbench
    wb.create_study("cur-tabs", kind="curation", k=1, reasons=["artifacts"])
    rng = np.random.default_rng(11)
    for i in range(2):
        src, tgt = (Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(2))
        wb.add_candidate("cur-tabs", src, f"tab edit {i}", tgt)
    ctx = browser.new_context(viewport=LAPTOP)
    tabs = [ctx.new_page(), ctx.new_page()]
    for tab in tabs:
        tab.set_default_timeout(60_000)
        open_url(tab, f"{launched.url}#curate")
        tab.locator("#curate-handle input, #curate-handle textarea").first.fill("two-tab-curator")
        tab.locator("#curate-password input").fill(admin_password)
        pick_study(tab, "curate-study", "cur-tabs")
        tab.locator("#curate-start").click()
        wait_viewer(tab, "curate-viewer", 2)
    first = tabs[0].locator("#curate-instruction").inner_text()
    assert tabs[1].locator("#curate-instruction").inner_text() == first  # one claim, shown in both tabs
    tabs[0].locator("#curate-accept").click()
    expect_status(tabs[0], "curate-status", "Accepted")
    tabs[1].get_by_label("Artifacts").check()
    tabs[1].locator("#curate-reject").click()
    question = tabs[1].locator("#curate-conflict").first
    expect(question).to_be_visible()
    expect(question).to_contain_text("You answered this in another tab (accept). Replace with reject?")
    expect(question).to_be_in_viewport()
    shot(tabs[1], "curate-two-tabs-question")
    study_id = wb.study_info("cur-tabs")["study_id"]
    assert list(decisions_frame(wb, study_id)["decision"]) == ["accept"]  # nothing stored while asking
    tabs[1].locator("#curate-replace").click()
    expect(question).to_be_hidden()
    expect(tabs[1].locator("#curate-instruction")).not_to_have_text(first)  # on to the next candidate
    decisions = decisions_frame(wb, study_id)
    assert list(decisions["decision"]) == ["reject"] and list(decisions["reasons"]) == [["artifacts"]]
    ctx.close()


def test_a_study_picked_while_the_list_refreshes_stays_picked(browser, launched, monkeypatch, portrait_study):
    import time

    from playwright.sync_api import expect

    wb = launched.workbench
    listing = wb.list_studies
    ctx, page, errors = new_page(browser, LAPTOP)
    open_url(page, f"{launched.url}#rate")
    box = page.locator("#rate-study input")
    first = box.input_value()
    other = portrait_study if first != portrait_study else "pref"

    def slow_listing(*args, **kwargs):  # the refresh that opening the picker starts arrives late
        time.sleep(2)
        return listing(*args, **kwargs)

    monkeypatch.setattr(wb, "list_studies", slow_listing)
    box.click()
    page.get_by_role("option", name=other, exact=True).click()  # picked from the list already shown
    expect(box).to_have_value(other)
    page.wait_for_timeout(3000)  # the late refresh has arrived by now
    expect(box).to_have_value(other)
    ctx.close()
    assert not errors, errors
