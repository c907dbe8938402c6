"""Leases instead of locks, late answers, two tabs of one rater, and an admin's release, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from db.models import Assignment, Decision, Item, Vote
from workbench.study_frames import decisions_frame, votes_frame


def _idle(wb, seconds: float = 3600) -> None:
    """Pretend every claim has been idle for ``seconds`` (its last activity moved into the past)."""
    with wb.db.write.begin() as s:
        for claim in s.scalars(select(Assignment)):  # in Python: SQLite keeps timestamps as text
            claim.active_at -= timedelta(seconds=seconds)
    wb.sweeper.reset()  # the clock moved: the next screen request sweeps at once


def _vote_count(wb) -> int:
    with wb.db.read.begin() as s:
        return s.scalar(select(func.count()).select_from(Vote))


def test_a_lapsed_claim_returns_to_the_pool_and_the_late_answer_is_extra(wb, make_study):
    make_study(wb, n_items=1, k=1, lease_seconds=2)
    for h in ("ann", "bob"):
        wb.add_rater(h)
    ann = wb.next_item("pref", "ann")
    assert wb.next_item("pref", "bob") is None  # the only slot is held
    assert wb.study_progress("pref")["in_progress"] == 1
    time.sleep(2.3)  # a real (short) lease runs out
    progress = wb.study_progress("pref")
    assert (progress["expired"], progress["in_progress"], progress["pending"]) == (1, 0, 1)
    bob = wb.next_item("pref", "bob")
    assert bob is not None and bob["item_id"] == ann["item_id"]
    # ann answers from the screen still open in her browser: kept, but bob holds the slot -> beyond k.
    late = wb.submit_vote(ann["impression_id"], "ann", "A", "ann-late")
    assert late["stored"] and late["extra"] is True
    on_time = wb.submit_vote(bob["impression_id"], "bob", "B", "bob-1")
    assert on_time["stored"] and on_time["extra"] is False
    assert wb.submit_vote(ann["impression_id"], "ann", "A", "ann-late")["outcome"] == "duplicate"  # once
    frame = votes_frame(wb, wb.study_info("pref")["study_id"])
    assert len(frame) == 2 and sorted(frame["extra"]) == [False, True]
    progress = wb.study_progress("pref")
    assert (progress["done"], progress["extra"], progress["pending"], progress["expired"]) == (1, 1, 0, 0)
    with wb.db.read.begin() as s:
        assert s.scalar(select(Item.assigned_count)) == 1


def test_a_late_answer_takes_the_free_slot_when_nobody_else_answered(wb, make_study):
    make_study(wb, n_items=1, k=1)
    for h in ("ann", "bob"):
        wb.add_rater(h)
    ann = wb.next_item("pref", "ann")
    _idle(wb)
    assert wb.study_progress("pref")["expired"] == 1
    late = wb.submit_vote(ann["impression_id"], "ann", "tie", "late")
    assert late["stored"] and late["extra"] is False  # nobody took the slot: it is the item's answer
    assert wb.next_item("pref", "bob") is None  # k = 1 is reached, not exceeded
    progress = wb.study_progress("pref")
    assert (progress["done"], progress["extra"], progress["expired"], progress["pending"]) == (1, 0, 0, 0)


def test_activity_renews_the_lease(wb, make_study):
    make_study(wb, n_items=1, k=1, lease_seconds=600)
    for h in ("ann", "bob"):
        wb.add_rater(h)
    first = wb.next_item("pref", "ann")
    _idle(wb, 500)
    assert wb.next_item("pref", "ann")["impression_id"] == first["impression_id"]  # re-shown: lease restarts
    _idle(wb, 500)  # 1000 s since the claim, 500 s since the last activity
    assert wb.next_item("pref", "bob") is None
    _idle(wb, 200)
    assert wb.next_item("pref", "bob")["item_id"] == first["item_id"]
    assert wb.next_item("pref", "ann") is not first  # her lapsed screen is not handed out again
    assert wb.next_item("pref", "ann") is None  # the only item: never twice


def test_two_tabs_of_one_rater_share_one_screen_and_a_stale_answer_asks(wb, make_study):
    make_study(wb, n_items=3, k=1)
    wb.add_rater("ann")
    tab1, tab2 = wb.next_item("pref", "ann"), wb.next_item("pref", "ann")
    assert tab1["impression_id"] == tab2["impression_id"]  # never two open screens of one item (or of two)
    imp = tab1["impression_id"]
    assert wb.submit_vote(imp, "ann", "A", "tab1")["outcome"] == "stored"
    stale = wb.submit_vote(imp, "ann", "B", "tab2")
    assert stale == {"vote_id": stale["vote_id"], "stored": False, "outcome": "conflict", "previous": "A"}
    assert _vote_count(wb) == 1
    assert wb.submit_vote(imp, "ann", "A", "tab2-same")["outcome"] == "same"
    replaced = wb.submit_vote(imp, "ann", "B", "tab2", replace=True)
    assert replaced["stored"] and replaced["outcome"] == "stored"
    assert wb.submit_vote(imp, "ann", "B", "tab2", replace=True)["outcome"] == "duplicate"
    frame = votes_frame(wb, wb.study_info("pref")["study_id"])
    assert len(frame) == 1 and frame["vote_id"].item() == replaced["vote_id"]
    with wb.db.read.begin() as s:
        chain = s.execute(select(Vote.choice, Vote.supersedes_id).order_by(Vote.id)).all()
    assert [c.choice for c in chain] == ["A", "B"] and chain[1].supersedes_id is not None
    # After an undo the screen is open again: a new answer is no conflict.
    wb.undo_vote("pref", "ann")
    assert wb.submit_vote(imp, "ann", "tie", "after-undo")["outcome"] == "stored"


def test_curation_two_tabs_lease_and_late_decision(wb, solid):
    wb.create_study("cur", kind="curation", k=1, reasons=["artifacts"])
    wb.add_candidate("cur", solid(1), "add a hat", solid(2))
    for h in ("ann", "bob"):
        wb.add_rater(h)
    tab1, tab2 = wb.next_candidate("cur", "ann"), wb.next_candidate("cur", "ann")
    cid = tab1["candidate_id"]
    assert tab2["candidate_id"] == cid
    assert wb.submit_decision(cid, "ann", "accept", idempotency_key="t1")["outcome"] == "stored"
    stale = wb.submit_decision(cid, "ann", "reject", ["artifacts"], idempotency_key="t2")
    assert stale["outcome"] == "conflict" and stale["previous"] == "accept"
    assert wb.submit_decision(cid, "ann", "reject", ["artifacts"], idempotency_key="t2", replace=True)[
        "stored"
    ]
    # A claim left alone lapses; the late decision is kept beyond k when another reviewer took the slot.
    wb.add_candidate("cur", solid(3), "add a scarf", solid(4))
    held = wb.next_candidate("cur", "ann")
    _idle(wb)
    assert wb.next_candidate("cur", "bob")["candidate_id"] == held["candidate_id"]
    late = wb.submit_decision(held["candidate_id"], "ann", "flag", idempotency_key="late")
    assert late["stored"] and late["extra"] is True
    frame = decisions_frame(wb, wb.study_info("cur")["study_id"])
    assert frame.loc[frame["decision_id"] == late["decision_id"], "extra"].item()
    with wb.db.read.begin() as s:
        assert s.scalar(select(func.count()).select_from(Decision)) == 3


def test_an_admin_releases_a_raters_claims(wb, make_study):
    make_study(wb, n_items=2, k=1)
    for h in ("ann", "bob"):
        wb.add_rater(h)
    ann = wb.next_item("pref", "ann")
    assert wb.release_claims("pref", "ann", actor="root") == 1
    assert wb.release_claims("pref", "ann", actor="root") == 0
    assert wb.study_progress("pref")["raters"] == [
        {"rater": "ann", "done": 0, "in_progress": 0, "expired": 1, "extra": 0, "skipped": 0}
    ]
    seen = {wb.next_item("pref", "bob")["item_id"]}
    wb.submit_vote(wb.next_item("pref", "bob")["impression_id"], "bob", "A", "b1")
    seen.add(wb.next_item("pref", "bob")["item_id"])
    assert ann["item_id"] in seen  # the released item went back to the pool
    assert wb.next_item("pref", "ann") is None  # bob holds the other item; hers never comes back to her
    log = wb.audit_log("pref")
    assert log[0]["action"] == "release" and log[0]["actor"] == "root"
    assert log[0]["details"] == {"rater": "ann", "claims": 1}
    wb.skip(ann["impression_id"], "ann")  # skipping a released screen gives back no second slot
    with wb.db.read.begin() as s:
        assert s.scalar(select(Item.assigned_count).where(Item.id == ann["item_id"])) == 1
    with pytest.raises(ValueError, match="skipped"):
        wb.submit_vote(ann["impression_id"], "ann", "A", "after-skip")


def test_concurrent_sweeps_release_each_lapsed_slot_once(wb, make_study):
    make_study(wb, n_items=8, k=1)
    first = [f"a{i}" for i in range(8)]
    second = [f"b{i}" for i in range(8)]
    for h in first + second:
        wb.add_rater(h)
    for h in first:
        assert wb.next_item("pref", h) is not None
    _idle(wb)
    got: dict[str, int | None] = {}

    def claim(handle: str) -> None:
        shown = wb.next_item("pref", handle)
        got[handle] = None if shown is None else shown["item_id"]

    threads = [threading.Thread(target=claim, args=(h,)) for h in second]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(v for v in got.values() if v is not None) == sorted(set(got.values()))  # no item twice
    assert None not in got.values()  # all eight slots came back, each exactly once
    with wb.db.read.begin() as s:
        assert set(s.scalars(select(Item.assigned_count))) == {1}
    assert wb.study_progress("pref")["expired"] == 8


def test_nothing_free_is_not_done_while_others_hold_unseen_items(wb, make_study, solid):
    make_study(wb, n_items=2, k=1)
    for h in ("ann", "bob"):
        wb.add_rater(h)
    ann = wb.next_item("pref", "ann")
    bob = wb.next_item("pref", "bob")
    wb.submit_vote(bob["impression_id"], "bob", "A", "b1")
    assert wb.next_item("pref", "bob") is None
    assert wb.held_by_others("pref", "bob") == 1  # ann's screen: it may still come back to bob
    assert wb.held_by_others("pref", "ann") == 0  # her own claim and bob's answered item do not count
    _idle(wb)  # ann's lease lapses: no longer held, and the next request hands it to bob
    assert wb.held_by_others("pref", "bob") == 0
    assert wb.next_item("pref", "bob")["item_id"] == ann["item_id"]

    wb.create_study("cur", kind="curation", k=1, reasons=["artifacts"])
    wb.add_candidate("cur", solid(1), "add a hat", solid(2))
    held = wb.next_candidate("cur", "ann")
    assert wb.next_candidate("cur", "bob") is None and wb.held_by_others("cur", "bob") == 1
    wb.submit_decision(held["candidate_id"], "ann", "accept", idempotency_key="c1")
    assert wb.held_by_others("cur", "bob") == 0  # decided with k = 1: gone for good
