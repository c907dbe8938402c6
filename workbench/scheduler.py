"""Choosing what a rater sees next. All functions run inside the caller's write transaction.

Rules (issue #3): a rater never gets the same item twice (UNIQUE(rater, item) on assignments); each item reaches k
raters (an atomic guarded ``UPDATE ... SET assigned_count = assigned_count + 1 WHERE assigned_count < k``, safe on
PostgreSQL's row locks as well as under SQLite's write lock); the least-shown system pair of an item is chosen
(or the least certain pair, when a priority map is supplied); the left/right side is balanced per pair and
randomised on ties, and logged on the impression; gold items are mixed in at the study's rate.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.orm import Session

from db.models import Assignment, CurationCandidate, GoldItem, Impression, Item, Output, PairCount, utcnow

# How many queue-head rows to draw from: enough to randomise each rater's order, small enough to stay O(1).
CANDIDATE_WINDOW = 48

PairPriority = Mapping[tuple[int, int], float]


@dataclass(frozen=True)
class StudyRecord:
    """The study settings the scheduler needs (studies are not edited after creation, so this is cacheable)."""

    id: int
    name: str
    kind: str
    k: int
    gold_rate: float
    pair_mode: str


def open_impression(s: Session, study_id: int, rater_id: int) -> int | None:
    """The rater's oldest unanswered impression (re-shown after a restart, a reload or an undo)."""
    return s.scalar(
        select(Impression.id)
        .where(Impression.rater_id == rater_id, Impression.study_id == study_id, Impression.status == "open")
        .order_by(Impression.id)
        .limit(1)
    )


def _unseen(target_id_column, assignment_column, rater_id: int):  # noqa: ANN001, ANN202 - SQL expressions
    """No assignment of this rater points at the row (the "never twice" rule, served by UNIQUE(rater, item))."""
    return ~exists().where(Assignment.rater_id == rater_id, assignment_column == target_id_column)


def _claim_from_queue(s: Session, model, conditions, k: int, rng: random.Random):  # noqa: ANN001, ANN202
    """Claim one row of ``model`` (items or candidates) for a rater: least covered first, random within that."""
    rows = s.execute(
        select(model.id, model.assigned_count)
        .where(*conditions, model.assigned_count < k)
        .order_by(model.assigned_count, model.order_key)
        .limit(CANDIDATE_WINDOW)
    ).all()
    while rows:
        least = rows[0].assigned_count
        pool = [r for r in rows if r.assigned_count == least]
        pick = rng.choice(pool)
        claimed = s.execute(
            update(model)
            .where(model.id == pick.id, model.assigned_count < k)
            .values(assigned_count=model.assigned_count + 1)
        ).rowcount
        if claimed:
            return pick.id
        rows = [r for r in rows if r.id != pick.id]  # another replica took the last slot: try the next one
    return None


def claim_item(s: Session, study: StudyRecord, rater_id: int, rng: random.Random) -> int | None:
    """Reserve a regular item for the rater (counts toward k), or None when nothing is left for them."""
    conditions = (
        Item.study_id == study.id,
        Item.is_gold.is_(False),
        _unseen(Item.id, Assignment.item_id, rater_id),
    )
    return _claim_from_queue(s, Item, conditions, study.k, rng)


def claim_gold(s: Session, study: StudyRecord, rater_id: int, rng: random.Random) -> int | None:
    """A gold item this rater has not seen yet (gold items are shown to every rater; they do not use k)."""
    ids = s.scalars(
        select(Item.id)
        .where(
            Item.study_id == study.id, Item.is_gold.is_(True), _unseen(Item.id, Assignment.item_id, rater_id)
        )
        .order_by(Item.order_key)
        .limit(CANDIDATE_WINDOW)
    ).all()
    return rng.choice(ids) if ids else None


def claim_candidate(s: Session, study: StudyRecord, rater_id: int, rng: random.Random) -> int | None:
    """Reserve a curation candidate for the rater (k reviewers per candidate)."""
    conditions = (
        CurationCandidate.study_id == study.id,
        _unseen(CurationCandidate.id, Assignment.candidate_id, rater_id),
    )
    return _claim_from_queue(s, CurationCandidate, conditions, study.k, rng)


def _pair_counts(s: Session, study_id: int, systems: list[int]) -> dict[tuple[int, int], tuple[int, int]]:
    rows = s.execute(
        select(PairCount.system_lo, PairCount.system_hi, PairCount.shown, PairCount.lo_left).where(
            PairCount.study_id == study_id, PairCount.system_lo.in_(systems), PairCount.system_hi.in_(systems)
        )
    ).all()
    return {(r.system_lo, r.system_hi): (r.shown, r.lo_left) for r in rows}


def choose_pair(
    s: Session,
    study_id: int,
    item_id: int,
    rng: random.Random,
    must_include: int | None = None,
    priority: PairPriority | None = None,
) -> tuple[int, int]:
    """Pick two outputs of the item and their sides; returns (left, right) output ids, updating the counters."""
    outputs = dict(s.execute(select(Output.system_id, Output.id).where(Output.item_id == item_id)).all())
    if len(outputs) < 2:
        raise ValueError(f"item {item_id} has fewer than two outputs; nothing to compare")
    pairs = list(itertools.combinations(sorted(outputs), 2))
    if must_include is not None:
        pairs = [p for p in pairs if must_include in (outputs[p[0]], outputs[p[1]])]
    counts = _pair_counts(s, study_id, sorted(outputs))

    def rank(pair: tuple[int, int]) -> tuple[float, int, float]:
        # Most uncertain first (when asked), then least shown, then random.
        uncertainty = -(priority or {}).get(pair, 0.0)
        return (uncertainty, counts.get(pair, (0, 0))[0], rng.random())

    lo, hi = min(pairs, key=rank)
    shown, lo_left = counts.get((lo, hi), (0, 0))
    lo_on_left = lo_left * 2 < shown or (lo_left * 2 == shown and rng.random() < 0.5)
    _bump_pair(s, study_id, lo, hi, lo_on_left)
    return (outputs[lo], outputs[hi]) if lo_on_left else (outputs[hi], outputs[lo])


def _bump_pair(s: Session, study_id: int, lo: int, hi: int, lo_on_left: bool) -> None:
    bumped = s.execute(
        update(PairCount)
        .where(PairCount.study_id == study_id, PairCount.system_lo == lo, PairCount.system_hi == hi)
        .values(shown=PairCount.shown + 1, lo_left=PairCount.lo_left + int(lo_on_left))
    ).rowcount
    if not bumped:  # first impression of this pair; a concurrent first insert loses and the write is retried
        s.execute(
            insert(PairCount).values(
                study_id=study_id, system_lo=lo, system_hi=hi, shown=1, lo_left=int(lo_on_left)
            )
        )


def _gold_output(s: Session, item_id: int | None) -> int | None:
    return (
        None
        if item_id is None
        else s.scalar(select(GoldItem.good_output_id).where(GoldItem.item_id == item_id))
    )


def create_impression(
    s: Session,
    study: StudyRecord,
    rater_id: int,
    rng: random.Random,
    priority: PairPriority | None = None,
) -> int | None:
    """Claim the next item (gold at the study's rate) and log a new impression; its id, or None when done."""
    item_id, good_output = None, None
    if study.gold_rate > 0 and rng.random() < study.gold_rate:
        item_id = claim_gold(s, study, rater_id, rng)
        good_output = _gold_output(s, item_id)
    if item_id is None:
        item_id = claim_item(s, study, rater_id, rng)
    if item_id is None and study.gold_rate > 0:
        # Regular items are used up: still show the gold items this rater has not had, so every rater is scored.
        item_id = claim_gold(s, study, rater_id, rng)
        good_output = _gold_output(s, item_id)
    if item_id is None:
        return None
    assignment_id = s.scalar(
        insert(Assignment)
        .values(study_id=study.id, rater_id=rater_id, item_id=item_id, status="open", created_at=utcnow())
        .returning(Assignment.id)
    )
    left, right = choose_pair(s, study.id, item_id, rng, must_include=good_output, priority=priority)
    return s.scalar(
        insert(Impression)
        .values(
            study_id=study.id, rater_id=rater_id, item_id=item_id, assignment_id=assignment_id,
            left_output_id=left, right_output_id=right, status="open", shown_at=utcnow(),
        )
        .returning(Impression.id)
    )  # fmt: skip


def release_item(s: Session, item_id: int) -> None:
    """Give back a slot of k (after a skip) so another rater can take the item."""
    s.execute(
        update(Item)
        .where(Item.id == item_id, Item.is_gold.is_(False), Item.assigned_count > 0)
        .values(assigned_count=Item.assigned_count - 1)
    )


def count_items(s: Session, study_id: int) -> int:
    return s.scalar(select(func.count()).where(Item.study_id == study_id, Item.is_gold.is_(False))) or 0
