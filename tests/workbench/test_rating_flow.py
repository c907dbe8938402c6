"""The facade's rating and curation flows, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db.models import Decision, Impression, Vote


def test_next_item_hides_systems_and_resumes(wb, make_study, solid):
    make_study(wb)
    wb.add_rater("ann")
    shown = wb.next_item("pref", "ann")
    assert set(shown) == {
        "impression_id",
        "item_id",
        "instruction",
        "language",
        "category",
        "source_path",
        "left_path",
        "right_path",
        "progress",
    }
    assert "m1" not in repr(shown) and "m2" not in repr(shown)
    assert shown["progress"] == {"done": 0, "skipped": 0, "total": 6}
    # Reloading (or restarting the server) re-shows the same open impression instead of a new one.
    again = wb.next_item("pref", "ann")
    assert again["impression_id"] == shown["impression_id"]
    reopened = type(wb)(db_url=wb.db_url, data_dir=wb.data_dir)
    assert reopened.next_item("pref", "ann")["impression_id"] == shown["impression_id"]
    reopened.close()


def test_submit_is_idempotent_and_undo_keeps_history(wb, make_study, solid):
    make_study(wb)
    wb.add_rater("ann")
    imp = wb.next_item("pref", "ann")["impression_id"]
    first = wb.submit_vote(imp, "ann", "A", "k1", scores={"overall": 7, "semantic": 6.5})
    assert first["stored"] is True
    assert wb.submit_vote(imp, "ann", "A", "k1") == {
        "vote_id": first["vote_id"],
        "stored": False,
        "outcome": "duplicate",
    }
    undone = wb.undo_vote("pref", "ann")
    assert undone["impression_id"] == imp
    assert undone["previous"] == {
        "choice": "A",
        "semantic": 6.5,
        "quality": None,
        "overall": 7,
        "comment": "",
    }
    assert wb.next_item("pref", "ann")["impression_id"] == imp
    second = wb.submit_vote(imp, "ann", "B", "k2")
    with wb.db.read.begin() as s:
        rows = s.execute(select(Vote.id, Vote.choice, Vote.supersedes_id).order_by(Vote.id)).all()
    assert [r.choice for r in rows] == ["A", "retract", "B"]
    assert rows[1].supersedes_id == first["vote_id"] and rows[2].supersedes_id == rows[1].id
    assert rows[2].id == second["vote_id"]
    assert wb.next_item("pref", "ann")["impression_id"] != imp


def test_bad_votes_are_refused(wb, make_study, solid):
    make_study(wb)
    wb.add_rater("ann")
    wb.add_rater("bob")
    imp = wb.next_item("pref", "ann")["impression_id"]
    with pytest.raises(ValueError, match="choice"):
        wb.submit_vote(imp, "ann", "left", "k")
    with pytest.raises(ValueError, match="0 to 10"):
        wb.submit_vote(imp, "ann", "A", "k", scores={"overall": 11})
    with pytest.raises(ValueError, match="unknown score"):
        wb.submit_vote(imp, "ann", "A", "k", scores={"beauty": 3})
    with pytest.raises(PermissionError):
        wb.submit_vote(imp, "bob", "A", "k")
    with pytest.raises(LookupError, match="unknown rater"):
        wb.submit_vote(imp, "zed", "A", "k")
    with pytest.raises(LookupError, match="impression"):
        wb.submit_vote(10_000, "ann", "A", "k")
    wb.submit_vote(imp, "ann", "A", "k")
    imp_bob = wb.next_item("pref", "bob")["impression_id"]
    with pytest.raises(ValueError, match="already used"):
        wb.submit_vote(imp_bob, "bob", "A", "k")
    with wb.db.read.begin() as s:
        assert s.scalar(select(func.count()).select_from(Vote)) == 1


def test_skip_frees_the_slot_and_never_reshows(wb, make_study, solid):
    make_study(wb, n_items=1, k=1)
    for h in ("ann", "bob"):
        wb.add_rater(h)
    shown = wb.next_item("pref", "ann")
    wb.skip(shown["impression_id"], "ann")
    assert wb.next_item("pref", "ann") is None
    bob = wb.next_item("pref", "bob")
    assert bob["item_id"] == shown["item_id"]
    with pytest.raises(ValueError, match="skipped"):
        wb.submit_vote(shown["impression_id"], "ann", "A", "late")


def test_curation_queue_decisions_and_undo(wb, make_study, solid):
    wb.create_study("cur", kind="curation", k=2, reasons=["artifacts", "wrong_region"])
    for i in range(3):
        wb.add_candidate(
            "cur", solid(i), f"add hat {i}", solid(100 + i), filter_score=0.5 + i / 10, filter_reason="vlm"
        )
    for h in ("ann", "bob", "cat"):
        wb.add_rater(h)
    cand = wb.next_candidate("cur", "ann")
    assert cand["progress"] == {"done": 0, "total": 3}
    with pytest.raises(ValueError, match="taxonomy"):
        wb.submit_decision(cand["candidate_id"], "ann", "reject", ["blurry"], idempotency_key="d0")
    r1 = wb.submit_decision(cand["candidate_id"], "ann", "reject", ["artifacts"], "seam", "d1")
    assert (
        wb.submit_decision(cand["candidate_id"], "ann", "reject", ["artifacts"], "seam", "d1")["stored"]
        is False
    )
    assert r1["stored"]
    undone = wb.undo_decision("cur", "ann")
    assert undone["candidate_id"] == cand["candidate_id"] and set(undone["previous"]) == {
        "decision",
        "reasons",
        "note",
    }
    assert wb.next_candidate("cur", "ann")["candidate_id"] == cand["candidate_id"]
    wb.submit_decision(cand["candidate_id"], "ann", "accept", idempotency_key="d2")
    seen = {}
    for h in ("ann", "bob", "cat"):
        while (c := wb.next_candidate("cur", h)) is not None:
            seen.setdefault(c["candidate_id"], []).append(h)
            wb.submit_decision(c["candidate_id"], h, "flag", idempotency_key=f"{h}-{c['candidate_id']}")
    seen.setdefault(cand["candidate_id"], []).append("ann")
    assert sorted(len(v) for v in seen.values()) == [2, 2, 2]
    with wb.db.read.begin() as s:
        assert s.scalar(select(func.count()).select_from(Decision)) == 3 + 5


def test_study_kinds_are_not_mixed(wb, make_study, solid):
    make_study(wb, n_items=1)
    wb.create_study("cur", kind="curation")
    wb.add_rater("ann")
    with pytest.raises(ValueError, match="preference study"):
        wb.next_candidate("pref", "ann")
    with pytest.raises(ValueError, match="curation study"):
        wb.next_item("cur", "ann")
    with pytest.raises(ValueError, match="already exists"):
        wb.create_study("cur", kind="curation")
    with pytest.raises(LookupError):
        wb.next_item("nope", "ann")
    with wb.db.read.begin() as s:
        assert s.scalar(select(func.count()).select_from(Impression)) == 0


def test_progress_counts_skipped_items_apart(wb, make_study, solid):
    make_study(wb)
    wb.add_rater("ann")
    first = wb.next_item("pref", "ann")
    wb.skip(first["impression_id"], "ann")
    second = wb.next_item("pref", "ann")
    assert second["progress"] == {"done": 0, "skipped": 1, "total": 6}
    wb.submit_vote(second["impression_id"], "ann", "B", "k-skip")
    assert wb.next_item("pref", "ann")["progress"] == {"done": 1, "skipped": 1, "total": 6}
