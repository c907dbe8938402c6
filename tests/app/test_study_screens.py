"""Handler-level tests of the rater-facing study screens: progress without skipped items, undo restoring the
withdrawn answer, quotas and completion codes, rater links, and the Results tables as people read them."""

from __future__ import annotations

import math

import gradio as gr
import pytest

from workbench.ui import admin, curate, rate, rater_link, results, results_tables
from workbench.ui.study_settings import RaterSettings, completion_html, rater_settings, safe_redirect


def vote_all(wb, study: str, rater: str, choice: str) -> None:
    while (shown := wb.next_item(study, rater)) is not None:
        wb.submit_vote(
            shown["impression_id"], rater, choice, idempotency_key=f"{rater}-{shown['impression_id']}"
        )


def test_progress_leaves_out_skipped_items(ctx):
    ctx.workbench.add_rater("skipper")
    first = rate.next_item(ctx, "pref", "skipper")
    assert "Item 1 of 3" in rate.screen(first, "")[4]
    ctx.workbench.skip(first["public"]["impression_id"], "skipper")
    second = rate.next_item(ctx, "pref", "skipper")
    assert "Item 1 of 2" in rate.screen(second, "")[4]  # the skipped item never comes back
    last, _ = rate.submit_vote(ctx, second, "skipper", "A", None, None, None, "")
    assert "Item 2 of 2" in rate.screen(last, "")[4]
    done, _ = rate.submit_vote(ctx, last, "skipper", "B", None, None, None, "")
    assert done is None
    assert rate.FINISHED in rate.screen(done, "")[4]


def test_undo_preselects_the_withdrawn_answer(ctx):
    ctx.workbench.add_rater("undoer")
    task = rate.next_item(ctx, "pref", "undoer")
    rate.submit_vote(ctx, task, "undoer", "tie", 7, None, 3, "close call")
    restored = rate.new_task(ctx.workbench.undo_vote("pref", "undoer"), rate.PUBLIC_IMPRESSION_KEYS, "pref")
    out = rate.screen(restored, "undone")
    assert restored["public"]["impression_id"] == task["public"]["impression_id"]
    assert out[6:11] == ("tie", 7, None, 3, "close call")  # choice, semantic, quality, overall, comment
    assert rate.screen(task, "")[6:11] == (None, None, None, None, "")  # a fresh screen starts blank


def test_curation_undo_restores_reasons_and_note(ctx):
    ctx.workbench.add_rater("cur-undo")
    task = curate.next_candidate(ctx, "cur", "cur-undo")
    curate.submit_decision(ctx, task, "cur-undo", "reject", ["artifacts", "wrong_region"], "seam")
    restored = ctx.workbench.undo_decision("cur", "cur-undo")
    out = curate.screen(curate.new_task(restored, curate.PUBLIC_CANDIDATE_KEYS, "cur"), "undone")
    assert out[7:9] == (["artifacts", "wrong_region"], "seam")  # reasons, note


def test_curation_end_screen_says_when_others_hold_candidates(ctx):
    wb = ctx.workbench
    wb.add_rater("cur-holder")
    wb.add_rater("cur-waiter")
    # The waiter reviews what is free while the holder keeps one candidate open.
    holding = curate.next_candidate(ctx, "cur", "cur-holder")
    while (task := curate.next_candidate(ctx, "cur", "cur-waiter")) is not None:
        curate.submit_decision(ctx, task, "cur-waiter", "accept", [], "")
    out = curate.show(ctx, "cur", "cur-waiter", None, "")
    held = wb.held_by_others("cur", "cur-waiter")
    assert held >= 1 and out[1] == {"done": True, "held_by_others": held}
    assert "Nothing free for you right now" in out[5] and curate.FINISHED not in out[5]
    curate.submit_decision(ctx, holding, "cur-holder", "accept", [], "")
    assert curate.FINISHED in curate.show(ctx, "cur", "cur-holder", None, "")[5]


def test_quota_done_shows_the_completion_code(ctx, monkeypatch):
    wb = ctx.workbench
    info = wb.study_info

    def with_settings(study):
        return {
            **info(study),
            "quota": 1,
            "completion_code": "C0DE-42",
            "redirect_url": "https://example.org/done?cc=C0DE-42",
        }

    monkeypatch.setattr(wb, "study_info", with_settings)
    voted: set[str] = set()
    monkeypatch.setattr(wb, "rater_quota_done", lambda study, handle: handle in voted, raising=False)
    settings = rater_settings(wb, "pref")
    assert settings == RaterSettings(1, "C0DE-42", "https://example.org/done?cc=C0DE-42")
    out = rate.open_screen(ctx, "pref", "quota-rater")
    assert "Item 1 of 1" in out[4]  # the quota caps the rater's total
    voted.add("quota-rater")
    nxt, _ = rate.submit_vote(ctx, out[0], "quota-rater", "A", None, None, None, "")
    assert nxt is None
    end = rate.screen(nxt, "Saved", settings)[4]
    assert "C0DE-42" in end and 'href="https://example.org/done?cc=C0DE-42"' in end


def test_study_settings_default_and_unsafe_redirects(ctx):
    assert rater_settings(ctx.workbench, "pref") == RaterSettings()
    assert rater_settings(ctx.workbench, "no-such-study") == RaterSettings()
    assert safe_redirect("javascript:alert(1)") is None and safe_redirect("/relative") is None
    html = completion_html(RaterSettings(None, "<b>x</b>", "javascript:alert(1)"), "Done")
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "javascript" not in html


def test_rater_link_parameters():
    assert rater_link.link_params("http://h/?study=pref&rater=alice#rate") == ("alice", "pref")
    prolific = "http://h/?study=s%20one&PROLIFIC_PID=5f1a&STUDY_ID=x&SESSION_ID=y"
    assert rater_link.link_params(prolific) == ("5f1a", "s one")
    assert rater_link.link_params("http://h/#rate") == (None, None)
    links = rater_link.rater_links("https://studio.example/app/", "my study")
    assert links["plain"] == "https://studio.example/app/?study=my+study&rater="
    assert "PROLIFIC_PID={{%PROLIFIC_PID%}}" in links["prolific"] and links["prolific"].endswith("#rate")


def test_admin_progress_without_votes_says_so(ctx):
    summary, claims = admin.progress_table(ctx, "pref")
    assert claims.iloc[0, 0] == admin.NO_CLAIMS and "pending" in summary


def test_adding_an_existing_rater_is_reported(ctx):
    assert "Added 2 rater(s)." in admin.add_raters(ctx, "r-one\nr-two", "rater")
    again = admin.add_raters(ctx, "r-two\nr-three\nr-three", "rater")
    assert "Added 1 rater(s)." in again and "Already present, unchanged: r-two (rater)" in again
    with pytest.raises(gr.Error, match="Invalid handles"):
        admin.add_raters(ctx, "bad handle!", "rater")


def test_results_tables_read_well(ctx, make_scene):
    wb = ctx.workbench
    wb.create_study("pair", kind="preference", k=3)  # one pair of systems: every item is rated three times
    for i in range(3):
        outputs = {"system-x": make_scene(300 + i), "system-y": make_scene(400 + i)}
        wb.add_item("pair", make_scene(500 + i), f"edit {i}", outputs=outputs, category="color")
    for rater, choice in (("res-a", "A"), ("res-b", "A"), ("res-c", "tie")):
        wb.add_rater(rater)
        vote_all(wb, "pair", rater, choice)
    _, _, *tables, _ = results.render(ctx, "pair")
    named = dict(zip(results.SECTIONS, tables, strict=True))
    agreement = named["agreement"]
    assert list(agreement.columns) == results_tables.AGREEMENT_COLUMNS
    assert agreement["Metric"].str.len().min() > 0 and "0" not in agreement.columns
    assert "Fleiss' kappa" in set(agreement["Metric"])
    board = named["leaderboard"]
    assert {"System", results_tables.WIN_RATE_HALF, results_tables.CI_LOW} <= set(board.columns)
    per_category = named["per_category"]
    # 3 items x 3 raters: far under the minimum for a per-category interval
    assert set(per_category[results_tables.CI_LOW]) == {results_tables.NOT_ENOUGH}
    assert named["curation"].columns.tolist() == [results_tables.EMPTY_COLUMN]


def test_results_empty_and_curation_states(ctx):
    _, _, *tables, _ = results.render(ctx, "pref")
    for table in tables:
        assert table.columns.tolist() == [results_tables.EMPTY_COLUMN]  # a sentence, not "1 2 3" headers
    assert "rater link" in tables[0].iloc[0, 0]
    wb = ctx.workbench
    for curator in ("c1", "c2"):
        wb.add_rater(curator)
        while (cand := wb.next_candidate("cur", curator)) is not None:
            wb.submit_decision(cand["candidate_id"], curator, "reject", ["over_edit_identity_change"],
                               idempotency_key=f"{curator}-{cand['candidate_id']}")  # fmt: skip
    _, _, *tables, _ = results.render(ctx, "cur")
    named = dict(zip(results.SECTIONS, tables, strict=True))
    assert named["reasons"]["Reason"].tolist() == ["Over edit identity change"]
    assert named["curation"]["Group"].iloc[0] == "All decisions"
    # k = 1: no candidate was reviewed twice, which the table says in words instead of blank cells
    assert named["agreement"].iloc[0, 0] == results_tables.NO_OVERLAP


def test_zero_width_intervals_are_not_shown():
    rows = [
        {"system": "x", "rating": 1000.0, "ci_low": 1000.0, "ci_high": 1000.0, "votes": 1, "win_rate": 1.0}
    ]
    shown = results_tables.display(results_tables.leaderboard_frame(rows))
    assert shown[results_tables.CI_LOW].item() == results_tables.NOT_ENOUGH
    frame = results_tables.agreement_frame(
        {
            "units": 2,
            "krippendorff_alpha_nominal": 0.5,
            "krippendorff_alpha_nominal_ci": [0.5, 0.5],
            "fleiss_kappa": None,
        }
    )
    assert math.isnan(frame[results_tables.CI_LOW].iloc[0])  # zero width: no interval
    shown = results_tables.display(frame)
    assert shown.iloc[0].tolist()[1:4] == [0.5, results_tables.NOT_ENOUGH, results_tables.NOT_ENOUGH]
    assert shown.iloc[1].tolist()[1:4] == [results_tables.NOT_ENOUGH, "not computed", "not computed"]


def test_rater_link_restore(ctx):
    with gr.Blocks():
        w = rate.layout(ctx)
    status = 3 + w.screen.index(w.status)  # outputs: tabs, handle, study, *screen, saved, key
    key = "k" * 40
    out = rater_link.restore(ctx, w, None, "pref", "http://h/?study=pref&rater=linked", key)
    assert (
        out[1] == "linked"
        and out[3]["public"]["impression_id"]
        and out[-2] == {"handle": "linked", "study": "pref"}
        and out[-1] == key
    )
    # The link bound the handle to this browser: the same link opened in another browser signs nobody in.
    other = rater_link.restore(ctx, w, None, "pref", "http://h/?study=pref&rater=linked", "o" * 40)
    assert "another browser" in other[status] and "public" not in other[3]
    unknown = rater_link.restore(ctx, w, None, "pref", "http://h/?study=gone&rater=linked")
    assert "not open: gone" in unknown[status]
    assert "public" not in unknown[3]  # left as it is (gr.skip): no screen of another study
    bad = rater_link.restore(ctx, w, None, "pref", "http://h/?study=pref&rater=bad%20handle!")
    assert "handle may use" in bad[status]
    # A remembered sign-in fills the form; the item opens only when the page shows the Rate tab.
    saved = {"handle": "linked", "study": "pref"}
    on_edit = rater_link.restore(ctx, w, saved, "pref", "http://h/#edit")
    assert on_edit[1] == "linked" and "public" not in on_edit[3]
    on_rate = rater_link.restore(ctx, w, saved, "pref", "http://h/#rate", key)
    resumed = on_rate[3]["public"]["impression_id"]
    assert resumed == out[3]["public"]["impression_id"]  # the same item again, not a new one


def test_prolific_link_stores_study_and_session_ids_once(ctx, tmp_path):
    from workbench.export import study_tables

    with gr.Blocks():
        w = rate.layout(ctx)
    pid, key = "5f1a2b3c4d5e6f7a8b9c0d1e", "p" * 40
    url = f"http://h/?study=pref&PROLIFIC_PID={pid}&STUDY_ID=study-42&SESSION_ID=session-7#rate"
    for _ in range(2):  # a reload signs in again but stores the visit once
        out = rater_link.restore(ctx, w, None, "pref", url, key)
        assert out[1] == pid and out[3]["public"]["impression_id"]
    rows = ctx.workbench.rater_sessions("pref")
    assert [(r["rater"], r["platform"], r["external_study"], r["session"]) for r in rows] == [
        (pid, "prolific", "study-42", "session-7")
    ]
    exported = study_tables(ctx.workbench, "pref")["rater_sessions"]
    assert list(exported["session"]) == ["session-7"]
    # An unfilled placeholder is not stored, and the rater still gets their screen.
    raw = "http://h/?study=pref&PROLIFIC_PID=raw-pid&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}#rate"
    out = rater_link.restore(ctx, w, None, "pref", raw, "q" * 40)
    assert out[3]["public"]["impression_id"] and len(ctx.workbench.rater_sessions("pref")) == 1
    with pytest.raises(ValueError, match="session id"):
        ctx.workbench.record_rater_session("pref", pid, "prolific", "study-42", "x" * 101)
    with pytest.raises(ValueError, match="platform"):
        ctx.workbench.record_rater_session("pref", pid, "mturk", "a", "b")
