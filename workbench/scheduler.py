"""Choosing what a rater sees next. All functions run inside the caller's write transaction
(they take its Connection: ``session.connection()``).

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

from sqlalchemy import bindparam, exists, func, insert, select, update
from sqlalchemy.engine import Connection

from db.models import (
    Assignment,
    CurationCandidate,
    GoldItem,
    Impression,
    Item,
    Output,
    PairCount,
    Rater,
    utcnow,
)

# Table-level statements on a Connection: no ORM unit-of-work overhead on the per-screen hot path.
ASSIGNMENTS, CANDIDATES, GOLD = Assignment.__table__, CurationCandidate.__table__, GoldItem.__table__
IMPRESSIONS, ITEMS, OUTPUTS, PAIR_COUNTS = (
    Impression.__table__,
    Item.__table__,
    Output.__table__,
    PairCount.__table__,
)

# How many queue-head rows to draw from: enough to randomise each rater's order, small enough to stay O(1).
CANDIDATE_WINDOW = 48

PairPriority = Mapping[tuple[int, int], float]


@dataclass(frozen=True)
class StudyRecord:
    """The study settings the scheduler needs (read once per request: admins may edit a study at any time)."""

    id: int
    name: str
    kind: str
    k: int
    gold_rate: float
    pair_mode: str
    lease_seconds: int = 1800
    quota: int | None = None
    archived: bool = False


B = bindparam

# Statements are built once (bind parameters only): building a SQLAlchemy statement per call costs more CPU
# than running it, and this runs on every screen a rater sees.
_OPEN_IMPRESSION = (
    select(IMPRESSIONS.c.id, IMPRESSIONS.c.assignment_id)
    .where(IMPRESSIONS.c.rater_id == B("rater_id"), IMPRESSIONS.c.study_id == B("study_id"))
    .where(IMPRESSIONS.c.status == "open")
    .order_by(IMPRESSIONS.c.id)
    .limit(1)
)


def unseen(target_id_column, assignment_column):  # SQL expressions
    """No assignment of this rater points at the row (the "never twice" rule, served by UNIQUE(rater, item))."""
    return ~exists().where(ASSIGNMENTS.c.rater_id == B("rater_id"), assignment_column == target_id_column)


def _queue(table, *conditions):
    """Head of a claim queue: unseen rows under k, least covered first, in the fixed random order."""
    return (
        select(table.c.id, table.c.assigned_count)
        .where(table.c.study_id == B("study_id"), table.c.assigned_count < B("k"), *conditions)
        .order_by(table.c.assigned_count, table.c.order_key)
        .limit(CANDIDATE_WINDOW)
    )


def _claim(table):
    return (
        update(table)
        .where(table.c.id == B("row_id"), table.c.assigned_count < B("k"))
        .values(assigned_count=table.c.assigned_count + 1)
    )


_ITEM_QUEUE = _queue(ITEMS, ITEMS.c.is_gold.is_(False), unseen(ITEMS.c.id, ASSIGNMENTS.c.item_id))
_CANDIDATE_QUEUE = _queue(CANDIDATES, unseen(CANDIDATES.c.id, ASSIGNMENTS.c.candidate_id))
_CLAIM = {ITEMS.name: _claim(ITEMS), CANDIDATES.name: _claim(CANDIDATES)}
_GOLD_QUEUE = (
    select(ITEMS.c.id)
    .where(
        ITEMS.c.study_id == B("study_id"),
        ITEMS.c.is_gold.is_(True),
        unseen(ITEMS.c.id, ASSIGNMENTS.c.item_id),
    )
    .order_by(ITEMS.c.order_key)
    .limit(CANDIDATE_WINDOW)
)
_GOLD_OUTPUT = select(GOLD.c.good_output_id).where(GOLD.c.item_id == B("item_id"))
_OUTPUTS = select(OUTPUTS.c.system_id, OUTPUTS.c.id).where(OUTPUTS.c.item_id == B("item_id"))
_PAIR_COUNTS = select(
    PAIR_COUNTS.c.system_lo, PAIR_COUNTS.c.system_hi, PAIR_COUNTS.c.shown, PAIR_COUNTS.c.lo_left
).where(
    PAIR_COUNTS.c.study_id == B("study_id"),
    PAIR_COUNTS.c.system_lo.in_(B("systems", expanding=True)),
    PAIR_COUNTS.c.system_hi.in_(B("systems", expanding=True)),
)
_BUMP_PAIR = (
    update(PAIR_COUNTS)
    .where(
        PAIR_COUNTS.c.study_id == B("b_study"),
        PAIR_COUNTS.c.system_lo == B("lo"),
        PAIR_COUNTS.c.system_hi == B("hi"),
    )
    .values(shown=PAIR_COUNTS.c.shown + 1, lo_left=PAIR_COUNTS.c.lo_left + B("left_inc"))
)
_NEW_PAIR = insert(PAIR_COUNTS)
_NEW_ASSIGNMENT = insert(ASSIGNMENTS).returning(ASSIGNMENTS.c.id)
_NEW_IMPRESSION = insert(IMPRESSIONS).returning(IMPRESSIONS.c.id)
_RELEASE = (
    update(ITEMS)
    .where(ITEMS.c.id == B("item_id"), ITEMS.c.is_gold.is_(False), ITEMS.c.assigned_count > 0)
    .values(assigned_count=ITEMS.c.assigned_count - 1)
)
_RELEASE_CANDIDATE = (
    update(CANDIDATES)
    .where(CANDIDATES.c.id == B("candidate_id"), CANDIDATES.c.assigned_count > 0)
    .values(assigned_count=CANDIDATES.c.assigned_count - 1)
)
_IS_GOLD = select(ITEMS.c.is_gold).where(ITEMS.c.id == B("item_id"))
_COUNT_REGULAR = select(func.count()).where(ITEMS.c.study_id == B("study_id"), ITEMS.c.is_gold.is_(False))
# Gold items count too: "done" counts every answered screen, so a total without them would let a rater spot
# a gold item by the counter (e.g. "Item 4 of 4 · 5 done").
_COUNT_ITEMS = select(func.count()).where(ITEMS.c.study_id == B("study_id"))


_LOCK_RATER = select(Rater.id).where(Rater.id == bindparam("rater_id")).with_for_update()


def lock_rater(conn: Connection, rater_id: int) -> None:
    """Serialise this rater's "what next?" transactions until commit.

    Without it, two concurrent requests of one rater (a double click, a retry racing the original) on
    PostgreSQL's READ COMMITTED both find no open impression and both create one: the rater then holds two
    open screens and the one in the browser session may not be the one the last reply showed. SQLite's
    BEGIN IMMEDIATE already serialises writers (FOR UPDATE renders as nothing there).
    """
    conn.execute(_LOCK_RATER, {"rater_id": rater_id})


def open_impression(conn: Connection, study_id: int, rater_id: int):  # Row | None
    """The rater's oldest unanswered impression (re-shown after a restart, a reload or an undo):
    a row with ``id`` and ``assignment_id``, or None."""
    return conn.execute(_OPEN_IMPRESSION, {"rater_id": rater_id, "study_id": study_id}).first()


def _claim_from_queue(conn: Connection, table, queue, study: StudyRecord, rater_id: int, rng: random.Random):
    """Claim one row (item or candidate) for a rater: least covered first, random within that."""
    params = {"study_id": study.id, "rater_id": rater_id, "k": study.k}
    rows = conn.execute(queue, params).all()
    while rows:
        least = rows[0].assigned_count
        pick = rng.choice([r for r in rows if r.assigned_count == least])
        if conn.execute(_CLAIM[table.name], {"row_id": pick.id, "k": study.k}).rowcount:
            return pick.id
        rows = [r for r in rows if r.id != pick.id]  # another replica took the last slot: try the next one
    return None


def claim_item(conn: Connection, study: StudyRecord, rater_id: int, rng: random.Random) -> int | None:
    """Reserve a regular item for the rater (counts toward k), or None when nothing is left for them."""
    return _claim_from_queue(conn, ITEMS, _ITEM_QUEUE, study, rater_id, rng)


def claim_gold(conn: Connection, study: StudyRecord, rater_id: int, rng: random.Random) -> int | None:
    """A gold item this rater has not seen yet (gold items are shown to every rater; they do not use k)."""
    ids = conn.scalars(_GOLD_QUEUE, {"study_id": study.id, "rater_id": rater_id}).all()
    return rng.choice(ids) if ids else None


def claim_candidate(conn: Connection, study: StudyRecord, rater_id: int, rng: random.Random) -> int | None:
    """Reserve a curation candidate for the rater (k reviewers per candidate)."""
    return _claim_from_queue(conn, CANDIDATES, _CANDIDATE_QUEUE, study, rater_id, rng)


def pair_counts(
    conn: Connection, study_id: int, system_ids: list[int]
) -> dict[tuple[int, int], tuple[int, int]]:
    """(shown, lo_left) per system pair (lo, hi) among ``system_ids``."""
    rows = conn.execute(_PAIR_COUNTS, {"study_id": study_id, "systems": sorted(system_ids)}).all()
    return {(r.system_lo, r.system_hi): (r.shown, r.lo_left) for r in rows}


def pick_pair(
    pairs: list[tuple[int, int]],
    counts: Mapping[tuple[int, int], tuple[int, int]],
    rng: random.Random,
    priority: PairPriority | None = None,
) -> tuple[int, int, bool]:
    """The pair to show (most uncertain first when a priority is given, then least shown, then random) and
    whether its lower id goes on the left (the side it has been on less often; a coin flip on ties)."""

    def rank(pair: tuple[int, int]) -> tuple[float, int, float]:
        uncertainty = -(priority or {}).get(pair, 0.0)
        return (uncertainty, counts.get(pair, (0, 0))[0], rng.random())

    lo, hi = min(pairs, key=rank)
    shown, lo_left = counts.get((lo, hi), (0, 0))
    return lo, hi, lo_left * 2 < shown or (lo_left * 2 == shown and rng.random() < 0.5)


def count_pair(conn: Connection, study_id: int, lo: int, hi: int, lo_on_left: bool) -> None:
    """Add one showing of the pair (and of its side) to the running counters."""
    pair = {"b_study": study_id, "lo": lo, "hi": hi, "left_inc": int(lo_on_left)}
    if not conn.execute(_BUMP_PAIR, pair).rowcount:
        # First impression of this pair; a concurrent first insert loses on the primary key and is retried.
        conn.execute(_NEW_PAIR, {"study_id": study_id, "system_lo": lo, "system_hi": hi, "shown": 1,
                                 "lo_left": int(lo_on_left)})  # fmt: skip


def choose_pair(
    conn: Connection,
    study_id: int,
    item_id: int,
    rng: random.Random,
    must_include: int | None = None,
    priority: PairPriority | None = None,
) -> tuple[int, int]:
    """Pick two outputs of the item and their sides; returns (left, right) output ids, updating the counters."""
    outputs = dict(conn.execute(_OUTPUTS, {"item_id": item_id}).all())
    if len(outputs) < 2:
        raise ValueError(f"item {item_id} has fewer than two outputs; nothing to compare")
    pairs = list(itertools.combinations(sorted(outputs), 2))
    if must_include is not None:
        pairs = [p for p in pairs if must_include in (outputs[p[0]], outputs[p[1]])]
    lo, hi, lo_on_left = pick_pair(pairs, pair_counts(conn, study_id, list(outputs)), rng, priority)
    count_pair(conn, study_id, lo, hi, lo_on_left)
    return (outputs[lo], outputs[hi]) if lo_on_left else (outputs[hi], outputs[lo])


def create_impression(
    conn: Connection,
    study: StudyRecord,
    rater_id: int,
    rng: random.Random,
    priority: PairPriority | None = None,
) -> int | None:
    """Claim the next item (gold at the study's rate) and log a new impression; its id, or None when done."""
    item_id, good_output = None, None
    if study.gold_rate > 0 and rng.random() < study.gold_rate:
        item_id = claim_gold(conn, study, rater_id, rng)
    if item_id is None:
        item_id = claim_item(conn, study, rater_id, rng)
    if item_id is None and study.gold_rate > 0:
        # Regular items are used up: still show the gold items this rater has not had, so every rater is scored.
        item_id = claim_gold(conn, study, rater_id, rng)
    if item_id is None:
        return None
    if study.gold_rate > 0:
        good_output = conn.scalar(_GOLD_OUTPUT, {"item_id": item_id})
    now = utcnow()
    assignment_id = conn.scalar(
        _NEW_ASSIGNMENT,
        {
            "study_id": study.id,
            "rater_id": rater_id,
            "item_id": item_id,
            "status": "open",
            "created_at": now,
            "active_at": now,
        },
    )
    left, right = choose_pair(conn, study.id, item_id, rng, must_include=good_output, priority=priority)
    return conn.scalar(
        _NEW_IMPRESSION,
        {"study_id": study.id, "rater_id": rater_id, "item_id": item_id, "assignment_id": assignment_id,
         "left_output_id": left, "right_output_id": right, "status": "open", "shown_at": now},
    )  # fmt: skip


def release_item(conn: Connection, item_id: int) -> None:
    """Give back a slot of k (after a skip or a lapsed claim) so another rater can take the item."""
    conn.execute(_RELEASE, {"item_id": item_id})


def release_candidate(conn: Connection, candidate_id: int) -> None:
    """Give back a reviewer slot of a curation candidate."""
    conn.execute(_RELEASE_CANDIDATE, {"candidate_id": candidate_id})


def reclaim(conn: Connection, item_id: int | None, candidate_id: int | None, k: int) -> bool:
    """Take a slot of k again for a late answer on a lapsed claim; False when the row is full (the answer is then
    a rating beyond k). Gold items do not use k: always True."""
    if item_id is not None:
        if conn.scalar(_IS_GOLD, {"item_id": item_id}):
            return True
        return bool(conn.execute(_CLAIM[ITEMS.name], {"row_id": item_id, "k": k}).rowcount)
    return bool(conn.execute(_CLAIM[CANDIDATES.name], {"row_id": candidate_id, "k": k}).rowcount)


def count_regular_items(conn: Connection, study_id: int) -> int:
    """Non-gold items: the ones that take k raters (progress counts their slots)."""
    return conn.scalar(_COUNT_REGULAR, {"study_id": study_id}) or 0


def count_items(conn: Connection, study_id: int) -> int:
    """Items in the study, gold included (the progress total a rater sees)."""
    return conn.scalar(_COUNT_ITEMS, {"study_id": study_id}) or 0
