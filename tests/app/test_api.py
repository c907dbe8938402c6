"""gradio_client against a launched app: the rater loop, the curation loop, edit, stats and bad input."""

from __future__ import annotations

import json

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

pytestmark = pytest.mark.slow

API_NAMES = {"/edit", "/next_item", "/submit_vote", "/undo_vote", "/skip", "/next_candidate", "/submit_decision",
             "/undo_decision", "/stats"}  # fmt: skip


def client(launched, tmp_path) -> Client:
    return Client(launched.url, verbose=False, download_files=str(tmp_path))


def test_stable_api_names(launched, tmp_path):
    api = client(launched, tmp_path).view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) >= API_NAMES


def test_rater_loop_next_vote_undo_next(launched, tmp_path):
    c = client(launched, tmp_path)
    first = c.predict("pref", "api-rater", api_name="/next_item")
    shown = first[0]
    assert shown["progress"] == {"done": 0, "skipped": 0, "total": 3} and not shown["done"]
    after_vote = c.predict("pref", "api-rater", "B", 8, 6, None, "fine", api_name="/submit_vote")
    assert after_vote[0]["progress"]["done"] == 1 and "Saved" in after_vote[4]
    assert after_vote[0]["impression_id"] != shown["impression_id"]
    undone = c.predict("pref", "api-rater", api_name="/undo_vote")
    assert undone[0]["impression_id"] == shown["impression_id"] and undone[0]["progress"]["done"] == 0
    # A new session (another browser tab) resumes on the same open impression.
    resumed = client(launched, tmp_path).predict("pref", "api-rater", api_name="/next_item")
    assert resumed[0]["impression_id"] == shown["impression_id"]
    everything = json.dumps([first, after_vote, undone, resumed])
    assert "system-" not in everything  # no system identity in any rater response


def test_skip_moves_on(launched, tmp_path):
    c = client(launched, tmp_path)
    shown = c.predict("pref", "skipper", api_name="/next_item")[0]
    nxt = c.predict("skipper", api_name="/skip")[0]
    assert nxt["impression_id"] != shown["impression_id"]


def test_curation_loop(launched, tmp_path, admin_password):
    c = client(launched, tmp_path)
    first = c.predict("cur", "curator", admin_password, api_name="/next_candidate")[0]
    assert first["candidate_id"] and first["filter_reason"] == "test filter"
    after = c.predict("curator", admin_password, "reject", ["artifacts"], "seam", api_name="/submit_decision")
    assert after[0]["progress"]["done"] == 1 and "Rejected" in after[5]
    undone = c.predict("cur", "curator", admin_password, api_name="/undo_decision")[0]
    assert undone["candidate_id"] == first["candidate_id"]
    again = c.predict("curator", admin_password, "accept", [], "", api_name="/submit_decision")[0]
    assert again["progress"]["done"] == 1


def test_curation_needs_rights(launched, tmp_path):
    with pytest.raises(AppError, match="curator"):
        client(launched, tmp_path).predict("cur", "intruder", "wrong", api_name="/next_candidate")


def test_edit_endpoint(launched, tmp_path, make_scene):
    src = tmp_path / "src.png"
    make_scene(5, 48).save(src)
    (before, after), notice, seed, png = client(launched, tmp_path).predict(
        handle_file(str(src)), "make the blocks red", 2, 6.0, 123, False, 512, api_name="/edit"
    )[:4]
    assert seed == "123" and after.endswith(".png") and png.endswith("edit-123-1.png") and notice == ""


def test_edit_endpoint_defaults_are_the_models(launched, tmp_path, make_scene):
    """Only image and instruction: every setting is the loaded model's default (official: 28 steps at 512)."""
    from gradio_client import Client

    src = tmp_path / "src.png"
    make_scene(6, 48).save(src)
    info = Client(launched.url, verbose=False).view_api(return_format="dict", print_info=False)
    defaults = {
        p["parameter_name"]: p["parameter_default"] for p in info["named_endpoints"]["/edit"]["parameters"]
    }
    assert (defaults["n_steps"], defaults["guidance"], defaults["size"], defaults["truncate"]) == (
        28,
        6.0,
        512,
        0.93,
    )
    with pytest.raises(AppError, match="not in the list of choices"):
        client(launched, tmp_path).predict(
            handle_file(str(src)), "x", 2, 6.0, 0, False, 256, api_name="/edit"
        )


def test_bad_input_keeps_serving(launched, tmp_path, make_scene):
    c = client(launched, tmp_path)
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    with pytest.raises(AppError):
        c.predict(handle_file(str(text)), "make it red", 2, 6.0, 0, False, 512, api_name="/edit")
    img = tmp_path / "ok.png"
    make_scene(1).save(img)
    with pytest.raises(AppError, match="instruction"):
        c.predict(handle_file(str(img)), "   ", 2, 6.0, 0, False, 512, api_name="/edit")
    with pytest.raises(AppError, match="no item on screen"):
        c.predict("pref", "bad-input", "A", None, None, None, "", api_name="/submit_vote")
    assert c.predict("pref", "bad-input", api_name="/next_item")[0]["instruction"]
    with pytest.raises(AppError, match="Pick A, B"):
        c.predict("pref", "bad-input", None, None, None, None, "", api_name="/submit_vote")
    with pytest.raises(AppError, match="maximum value 10"):
        c.predict("pref", "bad-input", "A", 99, None, None, "", api_name="/submit_vote")
    ok = c.predict(
        "pref", "bad-input", "A", None, None, None, "<script>alert(1)</script>", api_name="/submit_vote"
    )
    assert "Saved" in ok[4]  # still serving, and the script-tag comment was stored as text


def test_stats_for_admins_only(launched, tmp_path, admin_password):
    c = client(launched, tmp_path)
    with pytest.raises(AppError, match="admins"):
        c.predict("wrong", "pref", api_name="/stats")
    out = c.predict(admin_password, "pref", api_name="/stats")
    assert out[-1].endswith(".zip")
