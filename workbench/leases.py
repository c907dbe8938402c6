"""Leases on claims: a screen (impression + assignment) or a curation claim lapses after the study's lease without
activity and its slot of k returns to the pool. Everything runs inside the caller's write transaction.

Expiry is lazy: each "what next?" request of a study first expires its idle claims (an indexed range scan that
usually finds nothing), so no background job is needed and several replicas agree. Each claim is expired by a
guarded ``UPDATE ... WHERE status = 'open'``: two concurrent sweeps (or a sweep racing an answer) cannot both
release the same slot. A late answer on an expired claim is kept: it takes a slot again when one is free,
otherwise it is stored as a rating beyond k (``assignments.extra``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import bindparam, case, exists, func, or_, select, update
from sqlalchemy.engine import Connection

from db.models import Assignment, CurationCandidate, Impression, Item, Rater, Study, utcnow
from workbench import scheduler

ASSIGNMENTS, IMPRESSIONS, ITEMS, RATERS = (
    Assignment.__table__,
    Impression.__table__,
    Item.__table__,
    Rater.__table__,
)
STUDIES, CANDIDATES = Study.__table__, CurationCandidate.__table__
B = bindparam
T = TypeVar("T")
STATES = ("done", "in_progress", "expired", "extra", "skipped")

_IDLE = (
    select(ASSIGNMENTS.c.id)
    .where(
        ASSIGNMENTS.c.study_id == B("study_id"),
        ASSIGNMENTS.c.status == "open",
        ASSIGNMENTS.c.active_at < B("cutoff"),
    )
    .order_by(ASSIGNMENTS.c.id)
)  # one order for every sweep: concurrent sweeps lock rows alike (no deadlock)
_RATER_OPEN = select(ASSIGNMENTS.c.id).where(
    ASSIGNMENTS.c.study_id == B("study_id"),
    ASSIGNMENTS.c.rater_id == B("rater_id"),
    ASSIGNMENTS.c.status == "open",
)
_EXPIRE = (
    update(ASSIGNMENTS)
    .where(ASSIGNMENTS.c.id == B("b_id"), ASSIGNMENTS.c.status == "open")
    .values(status="expired")
    .returning(ASSIGNMENTS.c.item_id, ASSIGNMENTS.c.candidate_id, ASSIGNMENTS.c.extra)
)
_EXPIRE_SCREEN = (
    update(IMPRESSIONS)
    .where(IMPRESSIONS.c.assignment_id == B("b_id"), IMPRESSIONS.c.status == "open")
    .values(status="expired")
)
_TOUCH = update(ASSIGNMENTS).where(ASSIGNMENTS.c.id == B("b_id")).values(active_at=B("now"))
_DONE_IF_OPEN = (
    update(ASSIGNMENTS)
    .where(ASSIGNMENTS.c.id == B("b_id"), ASSIGNMENTS.c.status.in_(("open", "done")))
    .values(status="done", active_at=B("now"))
    .returning(ASSIGNMENTS.c.extra)
)
_CLAIM_STATE = (
    select(ASSIGNMENTS.c.status, ASSIGNMENTS.c.item_id, ASSIGNMENTS.c.candidate_id, STUDIES.c.k)
    .join(STUDIES, STUDIES.c.id == ASSIGNMENTS.c.study_id)
    .where(ASSIGNMENTS.c.id == B("b_id"))
)
_LATE_DONE = (
    update(ASSIGNMENTS)
    .where(ASSIGNMENTS.c.id == B("b_id"))
    .values(status="done", active_at=B("now"), extra=B("b_extra"))
)


def cutoff(lease_seconds: int, now: datetime | None = None) -> datetime:
    """Claims idle since before this moment have lapsed."""
    return (now or utcnow()) - timedelta(seconds=lease_seconds)


def expire(conn: Connection, assignment_ids: list[int]) -> int:
    """Expire these open claims (and their open screens) and return their slots; returns how many lapsed now."""
    expired = 0
    for assignment_id in assignment_ids:
        row = conn.execute(_EXPIRE, {"b_id": assignment_id}).first()
        if row is None:  # answered, skipped or expired by a concurrent request meanwhile
            continue
        expired += 1
        conn.execute(_EXPIRE_SCREEN, {"b_id": assignment_id})
        if row.extra:  # a rating beyond k never held a slot
            continue
        if row.item_id is not None:
            scheduler.release_item(conn, row.item_id)
        else:
            scheduler.release_candidate(conn, row.candidate_id)
    return expired


def expire_idle(conn: Connection, study_id: int, lease_seconds: int) -> int:
    """Expire the study's claims idle for longer than the lease (run before handing out a new screen)."""
    ids = conn.scalars(_IDLE, {"study_id": study_id, "cutoff": cutoff(lease_seconds)}).all()
    return expire(conn, list(ids)) if ids else 0


class Sweeper:
    """Runs ``expire_idle`` for a study at most every ``min(1 s, lease / 4)`` per process (a claim then lapses a
    little after its lease, never before): the sweep is cheap but runs on every screen otherwise."""

    def __init__(self) -> None:
        self._last: dict[int, float] = {}

    def sweep(self, conn: Connection, study_id: int, lease_seconds: int) -> int:
        now = time.monotonic()
        if now - self._last.get(study_id, float("-inf")) < min(1.0, lease_seconds / 4):
            return 0
        self._last[study_id] = now
        return expire_idle(conn, study_id, lease_seconds)

    def reset(self) -> None:
        """Forget when each study was swept (the next request sweeps at once)."""
        self._last.clear()


def claim_or_sweep(
    conn: Connection, study_id: int, lease_seconds: int, claim: Callable[[], T | None]
) -> T | None:
    """``claim()``, and when nothing is free, expire the lapsed claims now (bypassing the throttle) and try once
    more: on PostgreSQL a concurrent request may be releasing slots right now. Its sweep holds the claims' row
    locks until it commits, so expiring them here waits for it, and the second claim sees the freed slots."""
    got = claim()
    if got is None:
        expire_idle(conn, study_id, lease_seconds)
        got = claim()
    return got


def _held_by_others(table, assignment_column):  # a SELECT COUNT statement
    """Rows of `table` (items or candidates) the rater never had, on which another rater holds a live claim."""
    live = ASSIGNMENTS.alias("live")
    conditions = [table.c.study_id == B("study_id"), scheduler.unseen(table.c.id, assignment_column)]
    if table is ITEMS:
        conditions.append(ITEMS.c.is_gold.is_(False))
    held = exists().where(
        live.c[assignment_column.name] == table.c.id, live.c.status == "open", live.c.active_at >= B("cutoff")
    )
    return select(func.count()).where(*conditions, held)


_HELD = {
    "preference": _held_by_others(ITEMS, ASSIGNMENTS.c.item_id),
    "curation": _held_by_others(CANDIDATES, ASSIGNMENTS.c.candidate_id),
}


def held_by_others(conn: Connection, study_id: int, rater_id: int, kind: str, lease_seconds: int) -> int:
    """How many items (candidates) the rater has not seen are held by other raters' live claims right now.

    Asked when a rater gets nothing: "done" would be wrong while these may still come back to them, should a
    claim lapse.
    """
    params = {"study_id": study_id, "rater_id": rater_id, "cutoff": cutoff(lease_seconds)}
    return int(conn.execute(_HELD[kind], params).scalar_one())


def release_rater(conn: Connection, study_id: int, rater_id: int) -> int:
    """Expire every open claim of one rater in the study (an admin's "release"); returns how many."""
    return expire(conn, list(conn.scalars(_RATER_OPEN, {"study_id": study_id, "rater_id": rater_id})))


def touch(conn: Connection, assignment_id: int | None) -> None:
    """Record activity on a claim (shown again, undone): its lease starts over."""
    if assignment_id is not None:
        conn.execute(_TOUCH, {"b_id": assignment_id, "now": utcnow()})


def settle(conn: Connection, assignment_id: int | None) -> bool:
    """Mark a claim answered; returns True when the answer is a rating beyond k.

    An open (or already answered) claim simply becomes done. An expired one is a late answer: it is kept and
    takes a slot again when the item (candidate) still has one, else it is marked ``extra``.
    """
    if assignment_id is None:
        return False
    now = utcnow()
    done = conn.execute(_DONE_IF_OPEN, {"b_id": assignment_id, "now": now}).first()
    if done is not None:
        return bool(done.extra)
    state = conn.execute(_CLAIM_STATE, {"b_id": assignment_id}).one()
    if state.status != "expired":
        raise ValueError(f"this screen was {state.status}; it cannot take an answer")
    extra = not scheduler.reclaim(conn, state.item_id, state.candidate_id, state.k)
    conn.execute(_LATE_DONE, {"b_id": assignment_id, "now": now, "b_extra": extra})
    return extra


def progress(conn: Connection, study_id: int, lease_seconds: int, slots: int) -> dict[str, Any]:
    """Done / in progress / pending / expired counts of a study's regular claims (gold items left out), in total
    and per rater.

    ``slots`` is items x k. ``in_progress`` are open claims within their lease; ``expired`` are claims that
    lapsed (swept or not yet), whose slots are free again; ``pending`` are the slots nobody holds or finished;
    ``extra`` are late answers kept beyond k.
    """
    idle = ASSIGNMENTS.c.active_at < B("cutoff")
    state = case(
        (ASSIGNMENTS.c.status == "done", case((ASSIGNMENTS.c.extra, "extra"), else_="done")),
        (ASSIGNMENTS.c.status == "expired", "expired"),
        (ASSIGNMENTS.c.status == "open", case((idle, "expired"), else_="in_progress")),
        else_="skipped",
    ).label("state")
    query = (
        select(RATERS.c.handle, state, func.count())
        .select_from(
            ASSIGNMENTS.join(RATERS, RATERS.c.id == ASSIGNMENTS.c.rater_id).outerjoin(
                ITEMS, ITEMS.c.id == ASSIGNMENTS.c.item_id
            )
        )
        .where(ASSIGNMENTS.c.study_id == B("study_id"), or_(ITEMS.c.is_gold.is_(None), ~ITEMS.c.is_gold))
        .group_by(RATERS.c.handle, state)
        .order_by(RATERS.c.handle)
    )
    per_rater: dict[str, dict[str, int]] = {}
    for handle, name, count in conn.execute(query, {"study_id": study_id, "cutoff": cutoff(lease_seconds)}):
        per_rater.setdefault(handle, dict.fromkeys(STATES, 0))[name] = int(count)
    totals = {name: sum(r[name] for r in per_rater.values()) for name in STATES}
    totals["pending"] = max(0, slots - totals["done"] - totals["in_progress"])
    totals["slots"] = slots
    return {**totals, "raters": [{"rater": handle, **counts} for handle, counts in per_rater.items()]}
