"""Workbench.stats: the DB -> DataFrame mapping (current answers only, sides, gold) feeding workbench.stats."""

from __future__ import annotations

import random

from sqlalchemy import select

from db.models import Impression, Output, System


def _systems_shown(wb, impression_id: int) -> tuple[str, str]:
    with wb.db.read.begin() as s:
        imp = s.get(Impression, impression_id)
        names = [
            s.scalar(select(System.name).join(Output, Output.system_id == System.id).where(Output.id == oid))
            for oid in (imp.left_output_id, imp.right_output_id)
        ]
    return names[0], names[1]


def test_stats_recover_order_and_count_sides(wb, make_study, solid):
    # Bradley-Terry strengths 4x apart: each pair is won 80 % / 80 % / 94 % of the time, so ~30 votes per pair
    # recover the order with near certainty (0.85 / 0.5 / 0.15 gave m1 over m2 only 63 %, and failed once).
    strength = {"m1": 16.0, "m2": 4.0, "m3": 1.0}
    make_study(wb, n_items=30, systems=tuple(strength), k=3, gold_rate=0.3)
    for i in range(3):
        wb.add_item(
            "pref",
            solid(5000 + i),
            "gold",
            outputs={"good": solid(6000 + i), "bad": solid(7000 + i)},
            gold="good",
        )
    rng = random.Random(3)
    for rater in ("ann", "bob", "cat"):
        wb.add_rater(rater)
        while (shown := wb.next_item("pref", rater)) is not None:
            left, right = _systems_shown(wb, shown["impression_id"])
            if "good" in (left, right):
                choice = "A" if left == "good" else "B"
            else:
                choice = "A" if rng.random() < strength[left] / (strength[left] + strength[right]) else "B"
            wb.submit_vote(
                shown["impression_id"], rater, choice, f"{rater}-{shown['impression_id']}", seconds_on_task=4
            )
    # An undone vote does not count; its replacement does.
    wb.undo_vote("pref", "cat")
    again = wb.next_item("pref", "cat")
    left, right = _systems_shown(wb, again["impression_id"])
    redo_is_gold = "good" in (left, right)
    wb.submit_vote(
        again["impression_id"], "cat", ("A" if left == "good" else "B") if redo_is_gold else "tie", "redo"
    )
    result = wb.stats("pref", bootstrap_rounds=50)
    board = result["leaderboard"]
    assert [row["system"] for row in board] == ["m1", "m2", "m3"]
    assert {"good", "bad"}.isdisjoint(row["system"] for row in board)
    assert sum(row["votes"] for row in board) == 2 * 90
    assert all(row["ci_low"] <= row["rating"] <= row["ci_high"] for row in board)
    overall = result["position_bias"][0]
    assert overall["votes"] == 90
    raters = {row["rater"]: row for row in result["raters"]}
    assert all(
        raters[r]["gold_votes"] == 3 and raters[r]["gold_accuracy"] == 1.0 for r in ("ann", "bob", "cat")
    )
    assert sum(row["ties"] for row in board) == (0 if redo_is_gold else 2)  # a tie counts for both systems


def test_curation_stats(wb, solid):
    wb.create_study("cur", kind="curation", k=2, reasons=["artifacts", "wrong_region"])
    for i in range(4):
        wb.add_candidate(
            "cur", solid(i), f"c{i}", solid(50 + i), category="subject-add" if i % 2 else "color_alter"
        )
    for rater in ("ann", "bob"):
        wb.add_rater(rater)
        while (cand := wb.next_candidate("cur", rater)) is not None:
            decision = "accept" if cand["category"] == "color_alter" else "reject"
            reasons = [] if decision == "accept" else ["artifacts"]
            wb.submit_decision(
                cand["candidate_id"],
                rater,
                decision,
                reasons,
                idempotency_key=f"{rater}{cand['candidate_id']}",
            )
    result = wb.stats("cur")
    assert result["leaderboard"] == []
    by_category = {row["category"]: row for row in result["curation"]["by_category"]}
    assert by_category["color_alter"]["acceptance_rate"] == 1.0
    assert by_category["subject-add"]["acceptance_rate"] == 0.0
    assert result["curation"]["overall"][0]["decisions"] == 8
    assert result["curation"]["agreement"]["raw_agreement"] == 1.0


def test_stats_on_an_empty_study(wb, make_study):
    make_study(wb, n_items=2)
    assert wb.stats("pref")["leaderboard"] == []
