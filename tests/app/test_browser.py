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
    page.wait_for_selector("#edit-run", state="attached")  # the page may open on another tab (URL hash)
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


# ---------------------------------------------------------------- studies: two tabs, leases, management


def add_study(wb, make_scene, name: str, n_items: int = 2, **settings) -> None:
    """A preference study of its own (the seeded one is used up by the tests above)."""
    wb.create_study(name, kind="preference", **settings)
    for i in range(n_items):
        outputs = {f"system-{j}": make_scene(300 + 10 * i + j) for j in range(2)}
        wb.add_item(name, make_scene(400 + i), f"{name} edit {i}", outputs=outputs, key=f"{name}-{i}")


def pick_study(page, elem_id: str, name: str) -> None:
    """Choose a study from its dropdown (opening it refreshes the list: wait for the option, then click it)."""
    from playwright.sync_api import expect

    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(name)
    page.get_by_role("option", name=name, exact=True).click()
    expect(box).to_have_value(name)
    page.wait_for_timeout(300)  # let the refresh started by the focus settle before going on
    expect(box).to_have_value(name)


def rate_in(page, study: str, handle: str) -> None:
    page.get_by_role("tab", name="Rate", exact=True).click()
    pick_study(page, "rate-study", study)
    start_rating(page, handle)


def test_two_tabs_ask_before_replacing(browser, launched, make_scene):
    from playwright.sync_api import expect
    from sqlalchemy import select

    from db.models import Vote
    from workbench.study_frames import votes_frame

    add_study(launched.workbench, make_scene, "tabs", k=1)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab1, tab2 = context.new_page(), context.new_page()
    for tab in (tab1, tab2):
        tab.set_default_timeout(60_000)
        open_app(tab, launched.url)
        rate_in(tab, "tabs", "two-tabs")
    first = tab1.locator("#rate-instruction").inner_text()
    assert tab2.locator("#rate-instruction").inner_text() == first  # one screen, shown in both tabs
    tab1.get_by_role("radio", name="A (left)").click()
    tab1.locator("#rate-submit").click()
    expect_status(tab1, "rate-status", "Saved")
    tab2.get_by_role("radio", name="B (right)").click()
    tab2.locator("#rate-submit").click()
    question = tab2.locator("#rate-conflict").first
    expect(question).to_be_visible()
    expect(question).to_contain_text("You answered this in another tab (A). Replace with B?")
    expect(question).to_be_in_viewport()  # brought into view: the rater sees the question and its buttons
    shot(tab2, "rate-two-tabs-question", full_page=False)
    study_id = launched.workbench.study_info("tabs")["study_id"]
    assert len(votes_frame(launched.workbench, study_id)) == 1  # nothing stored while asking
    tab2.locator("#rate-replace").click()
    expect_status(tab2, "rate-status", "Replaced")
    expect(question).to_be_hidden()
    votes = votes_frame(launched.workbench, study_id)
    assert len(votes) == 1 and votes["winner"].item() in ("model_a", "model_b")
    with launched.workbench.db.read.begin() as s:
        assert s.scalars(select(Vote.choice).order_by(Vote.id.desc())).first() == "B"
    # Keep: the other tab's answer stands and the next item comes.
    tab1.locator("#rate-start").click()
    expect(tab1.locator("#rate-instruction")).not_to_have_text(first)
    second_tab1 = tab1.locator("#rate-instruction").inner_text()
    tab2_text = tab2.locator("#rate-instruction").inner_text()
    assert tab2_text == second_tab1
    tab1.get_by_role("radio", name="Tie").click()
    tab1.locator("#rate-submit").click()
    expect_status(tab1, "rate-status", "Saved")
    tab2.get_by_role("radio", name="Both bad").click()
    tab2.locator("#rate-submit").click()
    expect(question).to_contain_text("(tie). Replace with both bad?")
    tab2.locator("#rate-keep").click()
    expect_status(tab2, "rate-status", "Kept your answer")
    shot(tab2, "rate-two-tabs-kept", full_page=False)
    context.close()


def test_a_lapsed_lease_frees_the_item_and_the_late_vote_is_kept(browser, launched, make_scene):
    from playwright.sync_api import expect

    from workbench.study_frames import votes_frame

    # A short lease, long enough for the second rater to find the item held on a loaded machine.
    add_study(launched.workbench, make_scene, "short-lease", n_items=1, k=1, lease_seconds=8)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    slow, fast = context.new_page(), browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    for tab in (slow, fast):
        tab.set_default_timeout(60_000)
        open_app(tab, launched.url)
    fast.get_by_role("tab", name="Rate", exact=True).click()  # ready to press Start
    pick_study(fast, "rate-study", "short-lease")
    fast.locator("#rate-handle input, #rate-handle textarea").first.fill("fast-rater")
    rate_in(slow, "short-lease", "slow-rater")
    fast.locator("#rate-start").click()
    expect(fast.locator("#rate-progress")).to_contain_text("Nothing free for you right now")  # slot held
    fast.wait_for_timeout(8_500)  # the slow rater's lease runs out
    fast.locator("#rate-start").click()
    expect(fast.locator("#rate-viewer .sx-pane")).to_have_count(3, timeout=30_000)
    slow.get_by_role("radio", name="A (left)").click()
    slow.locator("#rate-submit").click()
    expect_status(slow, "rate-status", "Saved")  # the late vote is kept, not lost
    fast.get_by_role("radio", name="B (right)").click()
    fast.locator("#rate-submit").click()
    expect_status(fast, "rate-status", "Saved")
    shot(fast, "rate-lease-taken-over", full_page=False)
    votes = votes_frame(launched.workbench, launched.workbench.study_info("short-lease")["study_id"])
    assert sorted(zip(votes["rater"], votes["extra"], strict=True)) == [
        ("fast-rater", False),
        ("slow-rater", True),
    ]
    context.close()
    fast.context.close()


def make_pack(folder: Path, make_scene, bad: bool = False) -> Path:
    """A zip with manifest.jsonl and three items (the last one's output missing when ``bad``)."""
    import json
    import zipfile

    rows = []
    for i in range(3):
        for name, seed in (("src", 500 + i), ("a", 550 + i), ("b", 590 + i)):
            make_scene(seed).save(folder / f"{name}{i}.png")
        rows.append({"source": f"src{i}.png", "instruction": f"managed {i}", "key": f"m{i}",
                     "outputs": {"sys-a": f"a{i}.png", "sys-b": "gone.png" if bad and i == 2 else f"b{i}.png"}})  # fmt: skip
    archive = folder / ("bad.zip" if bad else "pack.zip")
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("manifest.jsonl", "\n".join(json.dumps(r) for r in rows))
        for f in folder.glob("*.png"):
            zf.write(f, f.name)
    return archive


def test_admin_manages_a_study(page, launched, admin_password, make_scene, tmp_path):
    from playwright.sync_api import expect

    wb = launched.workbench
    page.get_by_role("tab", name="Admin", exact=True).click()
    page.locator("#admin-password input").fill(admin_password)
    page.locator("#admin-study-name input, #admin-study-name textarea").first.fill("managed")
    page.locator("#admin-new-lease input").fill("0.5")
    page.locator("#admin-new-quota input").fill("2")
    page.locator("#admin-new-code input, #admin-new-code textarea").first.fill("DONE-7")
    page.locator("#admin-upload input[type=file]").set_input_files(
        str(make_pack(tmp_path, make_scene, bad=True))
    )
    page.locator("#admin-create").click()
    expect_toast(page, "bad.zip/manifest.jsonl:3: output 'sys-b': file not found: 'gone.png'")
    assert "managed" not in [s["name"] for s in wb.list_studies()]  # the failed import left no study
    page.locator("#admin-upload button[aria-label='Clear']").first.click()
    page.locator("#admin-upload input[type=file]").set_input_files(str(make_pack(tmp_path, make_scene)))
    page.locator("#admin-create").click()
    expect_status(page, "admin-create-status", "3 rows imported")
    info = wb.study_info("managed")
    assert (info["lease_seconds"], info["quota"], info["completion_code"]) == (30, 2, "DONE-7")
    shot(page, "admin-create")

    wb.add_rater("held")
    wb.next_item("managed", "held")
    page.get_by_text("Manage a study", exact=True).click()
    open_app(page)  # the pickers list the new study after a reload
    page.get_by_role("tab", name="Admin", exact=True).click()
    page.locator("#admin-password input").fill(admin_password)
    page.get_by_text("Manage a study", exact=True).click()
    pick_study(page, "admin-study", "managed")
    page.locator("#admin-show-progress").click()
    expect(page.locator("#admin-progress")).to_contain_text("1 in progress")
    expect(page.locator("#admin-claims")).to_contain_text("held")
    page.locator("#admin-release-handle input, #admin-release-handle textarea").first.fill("held")
    page.locator("#admin-release").click()
    expect_status(page, "admin-status", "Released 1 claim(s) of held")
    page.locator("#admin-show-progress").click()
    expect(page.locator("#admin-progress")).to_contain_text("1 expired")
    shot(page, "admin-progress")

    page.get_by_text("Edit settings", exact=True).click()
    page.locator("#admin-load").click()
    expect(page.locator("#admin-edit-name input, #admin-edit-name textarea").first).to_have_value("managed")
    page.locator("#admin-edit-k input").fill("4")  # created with the default k = 3
    page.locator("#admin-edit-guidelines textarea").fill("Compare **carefully**.")
    page.locator("#admin-save").click()
    expect_status(page, "admin-status", "Saved: guidelines, k changed")
    page.locator("#admin-edit-k input").fill("2")
    page.locator("#admin-save").click()
    expect_toast(page, "only be raised")
    assert wb.study_info("managed")["k"] == 4
    shot(page, "admin-edit")

    page.locator("#admin-archive").click()
    expect_status(page, "admin-status", "archived")
    assert wb.study_info("managed")["archived"]
    page.locator("#admin-show-log").click()
    expect(page.locator("#admin-log")).to_contain_text("archive")
    shot(page, "admin-audit-log")

    page.get_by_text("Delete", exact=True).click()
    page.locator("#admin-delete-confirm input, #admin-delete-confirm textarea").first.fill("manage")
    page.locator("#admin-delete").click()
    expect_toast(page, "to confirm")
    page.locator("#admin-delete-confirm input, #admin-delete-confirm textarea").first.fill("managed")
    page.locator("#admin-delete").click()
    expect_status(page, "admin-status", "Deleted")
    expect(page.locator("#admin-export-file")).to_contain_text("export-managed")
    assert "managed" not in [s["name"] for s in wb.list_studies()]
    shot(page, "admin-deleted")
