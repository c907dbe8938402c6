"""Handler-level tests of the app's tabs against a real Workbench (temporary SQLite) and an editor."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pytest
import sqlalchemy as sa
from PIL import Image

from workbench.ui import curate, edit, rate
from workbench.ui.auth import is_admin
from workbench.ui.rating import PUBLIC_IMPRESSION_KEYS, new_task, public_json
from workbench.ui.serving import image_url
from workbench.ui.viewer import Pane, compare_viewer_html


def count(wb, table: str) -> int:
    with wb.db.engine.connect() as conn:
        return conn.execute(sa.text(f"select count(*) from {table}")).scalar_one()


def candidate_rows(wb) -> list:
    with wb.db.engine.connect() as conn:
        return conn.execute(
            sa.text("select language, category, instruction from curation_candidates order by id")
        ).all()


# ---------------------------------------------------------------- viewer


SHA = "ab" * 32


def test_viewer_escapes_labels(tmp_path):
    stored = tmp_path / "ab" / f"{SHA}.png"
    html = compare_viewer_html([Pane("<script>x</script>", stored, "source"), Pane("A", stored)])
    assert "<script>x" not in html and "&lt;script&gt;x" in html
    assert html.count('class="sx-pane"') == 2 and "sx-diff" in html


def test_image_url_names_the_content_hash_only(tmp_path):
    url = image_url(tmp_path / "secret-data-dir" / "ab" / f"{SHA}.png")
    assert url == f"studio/img/{SHA}.png"
    for odd in ('a"b<c>.png', "../workbench.db", f"{SHA}.png.bak"):
        with pytest.raises(ValueError):
            image_url(tmp_path / odd)


# ---------------------------------------------------------------- rate


def test_rater_view_never_names_a_system(ctx, workbench):
    workbench.add_rater("alice")
    task = rate.next_item(ctx, "pref", "alice")
    shown = json.dumps(public_json(task)) + rate.viewer_for(task)
    assert "system-" not in shown
    assert set(task["public"]) == set(PUBLIC_IMPRESSION_KEYS)
    for key in ("source_url", "left_url", "right_url"):
        name = public_json(task)[key].rsplit("/", 1)[1]
        assert len(name) == len("0" * 64 + ".png") and name.endswith(".png")


def test_submit_twice_with_same_key_stores_once(ctx, workbench):
    workbench.add_rater("bob")
    task = rate.next_item(ctx, "pref", "bob")
    nxt, msg = rate.submit_vote(ctx, task, "bob", "A", 7, None, 9, "<script>alert(1)</script>")
    assert msg == "Saved ✓" and nxt["public"]["impression_id"] != task["public"]["impression_id"]
    again, msg2 = rate.submit_vote(ctx, task, "bob", "A", 7, None, 9, "<script>alert(1)</script>")
    assert "duplicate" in msg2
    assert count(workbench, "votes") == 1
    assert nxt["public"]["progress"]["done"] == 1


def test_vote_needs_choice_and_valid_scores(ctx, workbench):
    workbench.add_rater("carol")
    task = rate.next_item(ctx, "pref", "carol")
    with pytest.raises(gr.Error, match="Pick A, B"):
        rate.submit_vote(ctx, task, "carol", None, None, None, None, "")
    with pytest.raises(gr.Error, match="from 0 to 10"):
        rate.submit_vote(ctx, task, "carol", "B", 11, None, None, "")
    assert count(workbench, "votes") == 0


def test_undo_reshows_the_voted_item(ctx, workbench):
    workbench.add_rater("dan")
    first = rate.next_item(ctx, "pref", "dan")
    rate.submit_vote(ctx, first, "dan", "tie", None, None, None, "")
    restored = new_task(workbench.undo_vote("pref", "dan"), PUBLIC_IMPRESSION_KEYS, "pref")
    assert restored["public"]["impression_id"] == first["public"]["impression_id"]
    assert restored["key"] != first["key"]  # a new display gets a new idempotency key


# ---------------------------------------------------------------- curate


def test_curation_reject_needs_a_reason_and_stores_once(ctx, workbench):
    workbench.add_rater("cur1")
    task = curate.next_candidate(ctx, "cur", "cur1")
    with pytest.raises(gr.Error, match="reason"):
        curate.submit_decision(ctx, task, "cur1", "reject", [], "")
    nxt, msg = curate.submit_decision(ctx, task, "cur1", "reject", ["artifacts"], "seams")
    assert msg.startswith("Rejected")
    _, msg2 = curate.submit_decision(ctx, task, "cur1", "reject", ["artifacts"], "seams")
    assert "duplicate" in msg2 and count(workbench, "decisions") == 1
    assert (
        "0.600" in curate.filter_html(nxt)
        or "0.700" in curate.filter_html(nxt)
        or "0.500" in curate.filter_html(nxt)
    )


def test_admin_rights(ctx, workbench, admin_password):
    assert is_admin(ctx, admin_password, None)
    assert not is_admin(ctx, "wrong", None) and not is_admin(ctx, "", None)
    ctx.settings.admin_org = "my-lab"
    member = gr.OAuthProfile({"name": "M", "preferred_username": "m", "profile": "", "picture": "",
                              "orgs": [{"preferred_username": "my-lab"}]})  # fmt: skip
    stranger = gr.OAuthProfile(
        {"name": "S", "preferred_username": "s", "profile": "", "picture": "", "orgs": []}
    )
    assert is_admin(ctx, None, member) and not is_admin(ctx, None, stranger)
    workbench.add_rater("s", role="admin")
    assert is_admin(ctx, None, stranger)


def test_password_guessing_backs_off_per_client(ctx, admin_password):
    from workbench.ui.throttle import FREE_TRIES, Backoff

    now = [0.0]
    ctx.limits.logins = Backoff(clock=lambda: now[0])
    for _ in range(FREE_TRIES):
        assert not is_admin(ctx, "guess", None, handle="mallory")
    # Locked now: even the right password is refused unchecked until the wait is over.
    with pytest.raises(gr.Error, match="Too many wrong passwords"):
        is_admin(ctx, admin_password, None)
    now[0] += 1.5
    assert not is_admin(ctx, "guess", None)  # one more failure: the wait doubles
    now[0] += 1.5
    with pytest.raises(gr.Error, match="try again in 1 s"):
        is_admin(ctx, admin_password, None)
    now[0] += 1.0
    assert is_admin(ctx, admin_password, None)  # success clears this client


def test_password_guessing_on_one_handle_backs_off_across_clients(ctx, admin_password, monkeypatch):
    from workbench.ui import auth
    from workbench.ui.throttle import FREE_TRIES, Backoff

    ctx.limits.logins = Backoff(clock=lambda: 0.0)
    addresses = iter(f"client:10.0.0.{i}" for i in range(100))
    monkeypatch.setattr(auth, "client_key", lambda: next(addresses))  # every guess from a new address
    for _ in range(FREE_TRIES):
        assert not is_admin(ctx, "guess", None, handle="mallory")
    with pytest.raises(gr.Error, match="Too many wrong passwords"):
        is_admin(ctx, admin_password, None, handle="mallory")
    assert is_admin(ctx, admin_password, None, handle="alice")  # other handles are unaffected


# ---------------------------------------------------------------- edit


def test_edit_runs_reports_steps_and_keeps_history(ctx, tmp_path, make_scene):
    src = tmp_path / "in.png"
    make_scene(1, 48).save(src)
    steps_seen = []
    pair, seed, png, hist, notice = edit.run_edit(
        ctx,
        str(src),
        "make it blue",
        3,
        6.0,
        42,
        False,
        512,
        [],
        progress=lambda p, **_: steps_seen.append(p),
    )
    assert seed == 42 and steps_seen[-1] == (3, 3) and len(hist) == 1 and notice == ""
    assert Image.open(png).format == "PNG" and Image.open(png).size == (48, 48)
    assert Path(png).name == "edit-42-1.png" and hist[0]["language"] == "en"
    pair2, seed2, png2, hist2, _ = edit.run_edit(ctx, pair[1], "现在变成红色", 2, 6.0, None, True, 512, hist)
    assert len(hist2) == 2 and hist2[1]["input"] == pair[1] and hist2[1]["language"] == "zh"
    assert Path(png2).name == f"edit-{seed2}-2.png"
    hist3, image, slider = edit.undo_turn(hist2)
    assert len(hist3) == 1 and image == pair[1] and slider == pair


@pytest.mark.parametrize(
    ("content", "instruction", "message"),
    [
        (b"not an image at all", "x", "not a readable image"),
        (None, "", "type an instruction"),
        ("huge", "x", "too large to edit"),
    ],
)
def test_edit_bad_input_gives_clear_message(ctx, tmp_path, content, instruction, message, make_scene):
    path = tmp_path / "upload.png"
    if content == "huge":
        Image.new("1", (30000, 30000)).save(path)
    elif content is not None:
        path.write_bytes(content)
    else:
        make_scene(0).save(path)
    with pytest.raises(gr.Error, match=message):
        edit.run_edit(ctx, str(path), instruction, 2, 6.0, 0, False, 512, [])


def test_send_to_study_records_a_candidate(ctx, workbench, tmp_path, make_scene, admin_password):
    src = tmp_path / "in.png"
    make_scene(3).save(src)
    _, _, _, hist, _ = edit.run_edit(ctx, str(src), "把它变成绿色", 2, 6.0, 1, False, 512, [])
    before = count(workbench, "curation_candidates")
    assert "Recorded" in edit.send_to_study(ctx, "cur", "color_alter", hist, admin_password)
    assert count(workbench, "curation_candidates") == before + 1
    stored = candidate_rows(workbench)[-1]
    assert (stored.language, stored.category, stored.instruction) == ("zh", "color_alter", "把它变成绿色")
    with pytest.raises(gr.Error):
        edit.send_to_study(ctx, "cur", None, [], admin_password)


def test_history_gallery_shows_the_last_turns_with_their_numbers():
    history = [{"output": f"/x/{i}.png", "instruction": f"edit {i}"} for i in range(1, 21)]
    items = edit.history_gallery(history)
    assert (
        len(items) == edit.GALLERY_TURNS
        and items[0] == ("/x/9.png", "9. edit 9")
        and items[-1][1] == "20. edit 20"
    )


def test_send_to_study_needs_curator_rights_refuses_repeats_and_is_rate_limited(
    ctx, workbench, tmp_path, make_scene, admin_password
):
    from workbench.ui.context import user_errors
    from workbench.ui.throttle import RateLimit

    src = tmp_path / "in.png"
    make_scene(4).save(src)
    _, _, _, hist, _ = edit.run_edit(ctx, str(src), "make it blue", 2, 6.0, 1, False, 512, [])
    before = count(workbench, "curation_candidates")
    for secret in (None, "", "wrong"):
        with pytest.raises(gr.Error, match="curator rights"):
            edit.send_to_study(ctx, "cur", None, hist, secret)
    send = user_errors(edit.send_to_study)  # how the app calls it: workbench errors become messages
    assert "Recorded" in send(ctx, "cur", None, hist, admin_password)
    with pytest.raises(gr.Error, match="already holds this"):
        send(ctx, "cur", None, hist, admin_password)
    assert count(workbench, "curation_candidates") == before + 1
    ctx.limits.sends = RateLimit(limit=1, window_s=60)
    _, _, _, hist, _ = edit.run_edit(ctx, str(src), "make it grey", 2, 6.0, 1, False, 512, hist)
    send(ctx, "cur", None, hist, admin_password)
    _, _, _, hist, _ = edit.run_edit(ctx, str(src), "make it pink", 2, 6.0, 1, False, 512, hist)
    with pytest.raises(gr.Error, match="Too many"):
        send(ctx, "cur", None, hist, admin_password)
    assert count(workbench, "curation_candidates") == before + 2


@pytest.mark.parametrize(
    ("steps", "cfg", "seed", "size", "message"),
    [
        (2, float("nan"), 0, 512, "CFG"),
        (2, float("inf"), 0, 512, "CFG"),
        (2, 100.0, 0, 512, "CFG"),
        (float("nan"), 6.0, 0, 512, "Denoising steps"),
        (10_000, 6.0, 0, 512, "Denoising steps"),
        (2, 6.0, float("nan"), 512, "Seed"),
        (2, 6.0, 0, float("nan"), "Size level"),
        (2, 6.0, 0, 100_000, "Size level"),
    ],
)
def test_edit_settings_must_be_finite_and_in_range(
    ctx, tmp_path, make_scene, steps, cfg, seed, size, message
):
    src = tmp_path / "in.png"
    make_scene(5).save(src)
    with pytest.raises(gr.Error, match=message):
        edit.run_edit(ctx, str(src), "make it red", steps, cfg, seed, False, size, [])


def test_scores_must_be_finite():
    for bad in (float("nan"), float("inf"), -1, 11):
        with pytest.raises(gr.Error, match="score"):
            rate.score(bad, "overall")
    assert rate.score(7.4, "overall") == 7


def test_edits_have_a_time_budget_and_a_rate_limit(ctx, tmp_path, make_scene, monkeypatch):
    from workbench.ui.throttle import RateLimit

    src = tmp_path / "in.png"
    make_scene(6).save(src)
    monkeypatch.setattr(edit, "EDIT_TIME_BUDGET_S", -1.0)  # already over budget at the first step
    with pytest.raises(gr.Error, match="budget"):
        edit.run_edit(ctx, str(src), "make it red", 2, 6.0, 0, False, 512, [])
    monkeypatch.setattr(edit, "EDIT_TIME_BUDGET_S", 600.0)
    ctx.limits.edits = RateLimit(limit=1, window_s=600)
    edit.run_edit(ctx, str(src), "make it red", 2, 6.0, 0, False, 512, [])
    with pytest.raises(gr.Error, match="many edits"):
        edit.run_edit(ctx, str(src), "make it blue", 2, 6.0, 0, False, 512, [])


def test_upload_byte_budget_per_client():
    from workbench.ui.serving import ByteBudget

    budget = ByteBudget(limit=100, window_s=3600)
    assert budget.take("1.2.3.4", 60) and budget.take("1.2.3.4", 40)
    assert not budget.take("1.2.3.4", 1) and budget.take("5.6.7.8", 100)


def test_client_address_trusts_the_forwarded_header_only_on_a_space(monkeypatch):
    from workbench.ui.throttle import client_address

    monkeypatch.delenv("SPACE_ID", raising=False)
    assert client_address("10.0.0.1", "6.6.6.6") == "10.0.0.1"  # a client cannot pick its own key
    monkeypatch.setenv("SPACE_ID", "org/space")
    assert client_address("10.0.0.1", "1.2.3.4, 10.0.0.1") == "1.2.3.4"  # behind the Space's proxy
    assert client_address(None, None) == "local"


def test_a_stale_tab_asks_before_replacing(ctx, workbench):
    from workbench.ui.rating import AnsweredElsewhere

    workbench.add_rater("eve")
    tab1, tab2 = rate.next_item(ctx, "pref", "eve"), rate.next_item(ctx, "pref", "eve")
    assert tab1["public"]["impression_id"] == tab2["public"]["impression_id"] and tab1["key"] != tab2["key"]
    rate.submit_vote(ctx, tab1, "eve", "A", None, None, None, "")
    with pytest.raises(AnsweredElsewhere) as asked:
        rate.submit_vote(ctx, tab2, "eve", "B", None, None, None, "")
    assert asked.value.question() == "You answered this in another tab (A). Replace with B?"
    assert count(workbench, "votes") == 1
    assert (
        rate.submit_vote(ctx, tab2, "eve", "A", None, None, None, "")[1] == "Already saved in another tab ✓"
    )
    assert rate.submit_vote(ctx, tab2, "eve", "B", None, None, None, "", replace=True)[1] == "Replaced ✓"
    assert count(workbench, "votes") == 2  # the chain keeps A, superseded by B
    c1, c2 = curate.next_candidate(ctx, "cur", "eve"), curate.next_candidate(ctx, "cur", "eve")
    curate.submit_decision(ctx, c1, "eve", "accept", [], "")
    with pytest.raises(AnsweredElsewhere, match="accept"):
        curate.submit_decision(ctx, c2, "eve", "flag", [], "")
    assert curate.submit_decision(ctx, c2, "eve", "flag", [], "", replace=True)[1] == "Flagged (replaced) ✓"


def test_the_edit_limit_is_configurable(monkeypatch):
    from workbench.ui.throttle import EDITS_ENV, Limits

    monkeypatch.delenv(EDITS_ENV, raising=False)
    assert Limits().edits.limit == 30
    monkeypatch.setenv(EDITS_ENV, "500")
    assert Limits().edits.limit == 500
    monkeypatch.setenv(EDITS_ENV, "lots")
    with pytest.raises(SystemExit, match=EDITS_ENV):
        Limits()
