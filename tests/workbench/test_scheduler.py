"""Scheduler properties: each item reaches exactly k raters, nobody sees an item twice, pairs and sides balance,
gold items appear, and concurrent raters never push an item past k."""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import func, select

from db.models import Assignment, Impression, Item, Output, System


def _drain(wb, study: str, raters: list[str]) -> int:
    """Raters take turns answering until everyone is done; returns the number of screens shown."""
    shown, active = 0, list(raters)
    while active:
        for rater in list(active):
            screen = wb.next_item(study, rater)
            if screen is None:
                active.remove(rater)
                continue
            wb.submit_vote(screen["impression_id"], rater, "tie", f"{rater}-{screen['impression_id']}")
            shown += 1
    return shown


def _impressions(wb):
    with wb.db.read.begin() as s:
        return s.execute(
            select(
                Impression.rater_id, Impression.item_id, Impression.left_output_id, Impression.right_output_id
            )
        ).all()


def test_k_coverage_never_twice_and_balance(wb, make_study):
    make_study(wb, n_items=12, systems=("m1", "m2", "m3", "m4"), k=3)
    raters = [f"r{i}" for i in range(5)]
    for rater in raters:
        wb.add_rater(rater)
    assert _drain(wb, "pref", raters) == 12 * 3
    rows = _impressions(wb)
    per_item = Counter(r.item_id for r in rows)
    assert set(per_item.values()) == {3}  # every item reached exactly k raters
    assert len({(r.rater_id, r.item_id) for r in rows}) == len(rows)  # never the same item twice
    with wb.db.read.begin() as s:
        system_of = dict(s.execute(select(Output.id, Output.system_id)).all())
        assert s.scalar(select(func.max(Item.assigned_count))) == 3
    pairs = Counter(frozenset((system_of[r.left_output_id], system_of[r.right_output_id])) for r in rows)
    assert len(pairs) == 6 and max(pairs.values()) - min(pairs.values()) <= 1  # 36 screens over 6 pairs
    for pair in pairs:
        lo = min(pair)
        on_left = sum(1 for r in rows if {system_of[r.left_output_id], system_of[r.right_output_id]} == pair
                      and system_of[r.left_output_id] == lo)  # fmt: skip
        assert abs(2 * on_left - pairs[pair]) <= 1  # each side shown first (almost) equally often


def test_gold_items_are_mixed_in_for_every_rater(wb, make_study, solid):
    make_study(wb, n_items=10, k=1, gold_rate=0.25)
    for i in range(2):
        wb.add_item(
            "pref",
            solid(900 + i),
            "gold",
            outputs={"good": solid(950 + i), "bad": solid(980 + i)},
            gold="good",
        )
    raters = ["ann", "bob"]
    for rater in raters:
        wb.add_rater(rater)
    _drain(wb, "pref", raters)
    with wb.db.read.begin() as s:
        gold_seen = s.execute(
            select(Impression.rater_id, func.count())
            .join(Item, Item.id == Impression.item_id)
            .where(Item.is_gold.is_(True))
            .group_by(Impression.rater_id)
        ).all()
        regular = s.scalar(
            select(func.count()).select_from(Impression).join(Item).where(Item.is_gold.is_(False))
        )
    assert sorted(n for _, n in gold_seen) == [2, 2]  # every rater is scored on every gold item
    assert regular == 10  # gold items do not consume the k slots of regular items


def test_concurrent_raters_never_exceed_k(wb, make_study):
    make_study(wb, n_items=8, k=2)
    raters = [f"t{i}" for i in range(8)]
    for rater in raters:
        wb.add_rater(rater)
    errors: list[BaseException] = []

    def work(rater: str) -> None:
        try:
            while (screen := wb.next_item("pref", rater)) is not None:
                wb.submit_vote(screen["impression_id"], rater, "A", f"{rater}-{screen['impression_id']}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in raters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = _impressions(wb)
    assert Counter(Counter(r.item_id for r in rows).values()) == {2: 8}
    with wb.db.read.begin() as s:
        assert s.scalar(select(func.count()).select_from(Assignment)) == 16


def test_uncertain_mode_avoids_settled_pairs(wb, solid, tmp_path):
    import json

    from workbench.arena.battle_log import import_battles

    wb.create_study("u", k=10, pair_mode="uncertain")
    systems = ("strong", "mid", "weak")
    for i in range(4):
        wb.add_item(
            "u", solid(i), f"e{i}", outputs={name: solid(10 * i + j + 1) for j, name in enumerate(systems)}
        )
    # History: strong always beats weak (settled); mid is a coin flip against both (uncertain).
    battles = [("strong", "weak", "model_a")] * 80 + [
        ("strong", "mid", "model_a"),
        ("strong", "mid", "model_b"),
    ] * 15
    battles += [("mid", "weak", "model_a"), ("mid", "weak", "model_b")] * 15
    log = tmp_path / "battles.jsonl"
    log.write_text(
        "".join(
            json.dumps({"model_a": a, "model_b": b, "winner": w, "tstamp": n}) + "\n"
            for n, (a, b, w) in enumerate(battles)
        )
    )
    import_battles(wb, "u", log)
    raters = [f"r{i}" for i in range(5)]
    for rater in raters:
        wb.add_rater(rater)
    _drain(wb, "u", raters)
    with wb.db.read.begin() as s:
        system_of = dict(s.execute(select(Output.id, Output.system_id)).all())
        names = dict(s.execute(select(System.id, System.name)).all())
    shown = Counter(
        frozenset((names[system_of[r.left_output_id]], names[system_of[r.right_output_id]]))
        for r in _impressions(wb)
    )
    assert sum(shown.values()) == 20
    assert shown[frozenset(("strong", "weak"))] == 0
