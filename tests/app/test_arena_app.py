"""The Arena in the running app, with the two embedded nano models as contestants: a whole battle in Chromium
(upload, both outputs, vote, reveal, leaderboard row changes, same prompt / new round), the Admin section, and
the battle / vote_battle / arena_leaderboard API through gradio_client."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.app.conftest import ADMIN_PASSWORD, free_port, scene
from tests.app.test_browser import open_app, shot
from workbench.arena.battles import Arena, Limits
from workbench.arena.demo import DEMO_ARENA, ensure_demo_arena

pytestmark = pytest.mark.slow
SYSTEMS = ("step1x-edit-nano", "step1x-edit-nano-v1")
BOARD_ROWS = "#arena-leaderboard [role=row].virtual-row"  # Gradio's data rows (not the header or sizing rows)


@pytest.fixture(scope="module")
def arena_app(tmp_path_factory, editor) -> Iterator[SimpleNamespace]:
    """The full app with the demo arena; one battle is already voted so the leaderboard has rows."""
    from workbench.service import Workbench
    from workbench.ui import AppSettings, build_demo, launch_kwargs

    root = tmp_path_factory.mktemp("arena-app")
    os.environ["GRADIO_TEMP_DIR"] = str(root / "gradio-tmp")
    os.environ["ARENA_BATTLES_PER_MINUTE"] = "100"
    settings = AppSettings(
        data_dir=root / "data", admin_password=ADMIN_PASSWORD, port=free_port(), demo_study=False
    )
    wb = Workbench(db_url=f"sqlite:///{root}/wb.db", data_dir=settings.data_dir)
    wb.init()
    ensure_demo_arena(wb)
    seeded = Arena(wb, limits=Limits(per_minute=10, per_day=10))
    seeded.vote(seeded.start(DEMO_ARENA, "seed", scene(1, 64), "make the background blue")["battle_id"], "A")
    demo = build_demo(settings, editor, wb)
    demo.queue(default_concurrency_limit=8)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(settings))
    yield SimpleNamespace(url=url, workbench=wb, root=root)
    demo.close()
    wb.close()
    os.environ.pop("ARENA_BATTLES_PER_MINUTE", None)


def battles_by_system(page) -> dict[str, int]:
    """The public leaderboard as {system: battles}, read from the page."""
    rows = page.locator(BOARD_ROWS)
    out = {}
    for i in range(rows.count()):
        cells = rows.nth(i).locator("[role=gridcell]").all_inner_texts()
        if len(cells) >= 6 and cells[1].strip() in SYSTEMS:
            out[cells[1].strip()] = int(cells[5].strip())
    return out


@pytest.mark.browser
def test_whole_battle_in_the_browser(browser, arena_app, tmp_path):
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(60_000)
    open_app(page, arena_app.url)
    page.get_by_role("tab", name="Arena", exact=True).click()
    page.wait_for_timeout(1000)
    shot(page, "arena-start")
    expect(page.locator(BOARD_ROWS)).to_have_count(2)
    before = battles_by_system(page)
    assert before == dict.fromkeys(SYSTEMS, 1)
    expect(page.locator("#arena-vote-A")).to_be_disabled()

    src = tmp_path / "photo.png"
    scene(9, 96).save(src)
    page.locator("#arena-input input[type=file]").set_input_files(str(src))
    page.locator("#arena-instruction textarea").fill("把背景变成蓝色")
    page.locator("#arena-start").click()
    expect(page.locator("#arena-viewer img.sx-main")).to_have_count(3, timeout=120_000)
    expect(page.locator("#arena-vote-A")).to_be_enabled()
    assert "nano" not in page.locator("#arena-viewer").inner_html()  # names stay hidden until the vote
    shot(page, "arena-battle")

    page.locator("#arena-vote-B").click()
    expect(page.locator("#arena-reveal")).to_contain_text("You preferred B")
    expect(page.locator("#arena-reveal")).to_contain_text("step1x-edit-nano")
    expect(page.locator("#arena-vote-A")).to_be_disabled()
    page.wait_for_function(
        """() => [...document.querySelectorAll('#arena-leaderboard [role=row].virtual-row')]
                 .filter(r => r.querySelectorAll('[role=gridcell]')[5]?.innerText.trim() === '2').length === 2"""
    )
    assert battles_by_system(page) == dict.fromkeys(SYSTEMS, 2)
    shot(page, "arena-revealed")

    page.locator("#arena-again").click()  # same prompt, new pair (here the only pair)
    expect(page.locator("#arena-reveal")).to_be_empty(timeout=60_000)
    expect(page.locator("#arena-vote-tie")).to_be_enabled(timeout=120_000)
    page.locator("#arena-vote-tie").click()
    expect(page.locator("#arena-reveal")).to_contain_text("You called it a tie")
    page.locator("#arena-new").click()
    expect(page.locator("#arena-viewer img")).to_have_count(0)
    expect(page.locator("#arena-instruction textarea")).to_have_value("")

    page.locator("#arena-start").click()  # nothing uploaded: a clear message, no battle
    expect(page.get_by_text("Please upload an image first")).to_be_visible()
    ctx.close()
    assert not errors, errors
    records = json.dumps(arena_app.workbench.stats(DEMO_ARENA, bootstrap_rounds=5)["leaderboard"])
    assert '"votes": 3' in records  # the seeded vote and the two from the browser (per system)


@pytest.mark.browser
def test_admin_arena_section(browser, arena_app):
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    open_app(page, arena_app.url)
    page.get_by_role("tab", name="Admin", exact=True).click()
    page.locator("#arena-admin").get_by_text("Arena").first.click()
    page.locator("#arena-admin-password input").fill(ADMIN_PASSWORD)
    page.locator("#arena-admin-health").click()
    expect(page.locator("#arena-admin-health-table")).to_contain_text("step1x-edit-nano-v1")
    page.get_by_role("tab", name="Moderation").click()
    page.locator("#arena-admin-queue").click()
    expect(page.locator("#arena-admin-queue-table")).to_contain_text("make the background blue")
    shot(page, "arena-admin")
    ctx.close()


def test_battle_api(arena_app, tmp_path):
    client = Client(arena_app.url, verbose=False, download_files=str(tmp_path))
    src = tmp_path / "api.png"
    scene(11, 64).save(src)
    battle_id, left, right = client.predict(
        handle_file(str(src)), "make the square red", "", api_name="/battle"
    )
    assert os.path.isfile(left) and os.path.isfile(right)
    assert "nano" not in json.dumps([battle_id, left, right])  # anonymous until the vote
    revealed = client.predict(battle_id, "A", api_name="/vote_battle")
    assert revealed["stored"] and {revealed["model_a"], revealed["model_b"]} == set(SYSTEMS)
    again = client.predict(battle_id, "A", api_name="/vote_battle")
    assert not again["stored"]
    with pytest.raises(AppError, match="already has a vote"):
        client.predict(battle_id, "B", api_name="/vote_battle")
    board = client.predict("", api_name="/arena_leaderboard")
    assert {row["system"] for row in board} == set(SYSTEMS) and all(row["battles"] >= 2 for row in board)
    with pytest.raises(AppError, match="Please type an instruction"):
        client.predict(handle_file(str(src)), "  ", "", api_name="/battle")
    with pytest.raises(AppError, match="no arena named"):
        client.predict("nope", api_name="/arena_leaderboard")
