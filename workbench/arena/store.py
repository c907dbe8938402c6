"""Arena rows in the database: arena studies and their contestants, battle records, moderation, failure counts.

A battle whose two outputs arrived is stored in one transaction as an item (source + instruction, key = the
battle token), two outputs, an impression (which system was left and which right) and an ``arena_battles`` row
with each side's latency; its vote is then an ordinary append-only, idempotent vote on that impression. A battle
where a system failed or timed out is an ``arena_battles`` row with the errors and no item: it takes no vote.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, insert, select, update
from sqlalchemy.orm import Session, aliased

from db.models import (
    RETRACT,
    ArenaBattle,
    ArenaContestant,
    Impression,
    Item,
    Output,
    Study,
    System,
    Vote,
    utcnow,
)
from workbench import scheduler
from workbench.arena.contestants import ContestantSpec
from workbench.lookup import study_row

if TYPE_CHECKING:
    from workbench.service import StudyRef, Workbench

# All arena votes are stored under this rater; the visitor is on the battle row. The space keeps it out of
# reach of the Rate tab's sign-in (handles there are letters, digits and . _ - @).
ARENA_RATER = "arena visitors"
WINNER = {"A": "model_a", "B": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}
BATTLES = ArenaBattle.__table__
_ITEMS, _OUTPUTS, _IMPRESSIONS = Item.__table__, Output.__table__, Impression.__table__
_NEW_ITEM = insert(_ITEMS).returning(_ITEMS.c.id)
_NEW_OUTPUT = insert(_OUTPUTS).returning(_OUTPUTS.c.id)
_NEW_IMPRESSION = insert(_IMPRESSIONS).returning(_IMPRESSIONS.c.id)
TIMED_OUT = "timed out"  # how a timeout's error text starts (counted apart from other failures)


@dataclass(frozen=True)
class BattleResult:
    """What one side produced: the image's content hash or an error, and the seconds it took."""

    system_id: int
    seconds: float | None
    image_hash: str | None = None
    error: str | None = None


def create_arena(
    wb: Workbench, name: str, contestants: Iterable[ContestantSpec], guidelines: str = ""
) -> int:
    """Create an arena study with its contestants (pairs favour overlapping rating CIs)."""
    study_id = wb.create_study(name, kind="arena", k=1, guidelines=guidelines, pair_mode="uncertain")
    wb.add_rater(ARENA_RATER)
    set_contestants(wb, study_id, contestants)
    return study_id


def set_contestants(wb: Workbench, study: StudyRef, contestants: Iterable[ContestantSpec]) -> list[str]:
    """Add contestants, or replace the settings of ones with the same name (their history stays)."""
    specs = list(contestants)

    def write(s: Session) -> list[str]:
        st = arena_study(wb, s, study)
        for spec in specs:
            system_id = wb.system_id(s, st.id, spec.name)
            row = s.scalars(select(ArenaContestant).where(ArenaContestant.system_id == system_id)).first()
            if row is None:
                s.add(ArenaContestant(system_id=system_id, kind=spec.kind, config=spec.config,
                                      timeout_s=spec.timeout_s, active=True))  # fmt: skip
            else:
                row.kind, row.config, row.timeout_s, row.active = spec.kind, spec.config, spec.timeout_s, True
        return [spec.name for spec in specs]

    return wb.db.run_write(write)


def set_active(wb: Workbench, study: StudyRef, name: str, active: bool) -> None:
    """Take a contestant out of (or back into) new battles; its battles and votes stay."""

    def write(s: Session) -> None:
        st = arena_study(wb, s, study)
        row = s.scalars(
            select(ArenaContestant).join(System, System.id == ArenaContestant.system_id)
            .where(System.study_id == st.id, System.name == name)
        ).first()  # fmt: skip
        if row is None:
            raise LookupError(f"no contestant {name!r} in arena {st.name!r}")
        row.active = active

    wb.db.run_write(write)


def arena_study(wb: Workbench, s: Session, study: StudyRef) -> Study:
    st = study_row(s, study)
    if st.kind != "arena":
        raise ValueError(f"study {st.name!r} is a {st.kind} study, not an arena")
    return st


def contestants(
    wb: Workbench, study: StudyRef, active_only: bool = True
) -> list[tuple[int, ContestantSpec, bool]]:
    """(system id, spec, active) of the arena's contestants, in the order they were added."""
    with wb.db.read.begin() as s:
        st = arena_study(wb, s, study)
        query = (
            select(System.id, System.name, ArenaContestant)
            .join(ArenaContestant, ArenaContestant.system_id == System.id)
            .where(System.study_id == st.id)
            .order_by(ArenaContestant.id)
        )
        rows = s.execute(query).all()
        return [
            (sid, ContestantSpec(name, c.kind, c.timeout_s, dict(c.config)), c.active)
            for sid, name, c in rows
            if c.active or not active_only
        ]


def recent_battles(s: Session, study_id: int, visitor: str, *since: datetime) -> tuple[int, ...]:
    """Battles this visitor started in the study since each of ``since`` (for the rate limits), in one query."""
    recent = BATTLES.c.created_at
    counts = [func.coalesce(func.sum(case((recent >= moment, 1), else_=0)), 0) for moment in since]
    query = select(*counts).where(
        BATTLES.c.study_id == study_id, BATTLES.c.visitor == visitor, recent >= min(since)
    )
    return tuple(int(n) for n in s.execute(query).one())


def prompt_moderation(s: Session, study_id: int, source_hash: str, instruction: str) -> str:
    """The moderation state already decided for this prompt (a flagged prompt stays flagged), else pending."""
    states = set(
        s.scalars(
            select(BATTLES.c.moderation)
            .where(
                BATTLES.c.study_id == study_id,
                BATTLES.c.source_hash == source_hash,
                BATTLES.c.instruction == instruction,
            )
            .distinct()
        )
    )
    return next((m for m in ("flagged", "approved") if m in states), "pending")


def store_battle(
    wb: Workbench,
    study: StudyRef,
    token: str,
    visitor: str,
    prompt: dict[str, Any],
    left: BattleResult,
    right: BattleResult,
    lo_on_left: bool,
) -> dict[str, Any]:
    """Record a finished battle in one transaction; returns the battle's ids and status."""
    both = left.image_hash is not None and right.image_hash is not None

    # Prebuilt-style Core statements (no ORM unit of work): this runs once per battle, on the visitor's wait.
    def write(s: Session) -> dict[str, Any]:
        st = wb._study_record(s, study)
        if st.kind != "arena":
            raise ValueError(f"study {st.name!r} is a {st.kind} study, not an arena")
        conn, now = s.connection(), utcnow()
        item_id = impression_id = None
        if both:
            item_id = conn.scalar(_NEW_ITEM, {
                "study_id": st.id, "external_key": token, "source_hash": prompt["source_hash"],
                "instruction": prompt["instruction"], "language": prompt["language"],
                "category": prompt["category"], "is_gold": False, "assigned_count": 0,
                "order_key": random.random(),
            })  # fmt: skip
            outputs = {
                side.system_id: conn.scalar(
                    _NEW_OUTPUT,
                    {"item_id": item_id, "system_id": side.system_id, "image_hash": side.image_hash},
                )
                for side in (left, right)
            }
            lo, hi = sorted((left.system_id, right.system_id))
            scheduler.count_pair(conn, st.id, lo, hi, lo_on_left)
            impression_id = conn.scalar(_NEW_IMPRESSION, {
                "study_id": st.id, "rater_id": wb._rater_id(s, ARENA_RATER), "item_id": item_id,
                "left_output_id": outputs[left.system_id], "right_output_id": outputs[right.system_id],
                "status": "open", "shown_at": now,
            })  # fmt: skip
        moderation = prompt_moderation(s, st.id, prompt["source_hash"], prompt["instruction"])
        conn.execute(insert(BATTLES), {
            "study_id": st.id, "token": token, "visitor": visitor, "left_system_id": left.system_id,
            "right_system_id": right.system_id, "item_id": item_id, "impression_id": impression_id,
            "source_hash": prompt["source_hash"], "instruction": prompt["instruction"],
            "language": prompt["language"], "left_seconds": left.seconds, "right_seconds": right.seconds,
            "left_error": left.error, "right_error": right.error, "status": "ready" if both else "failed",
            "moderation": moderation, "created_at": now,
        })  # fmt: skip
        return {"impression_id": impression_id, "status": "ready" if both else "failed"}

    return wb.db.run_write(write)


def battle_by_token(wb: Workbench, token: str) -> dict[str, Any]:
    """The battle's study, status, impression and the names of its left and right systems."""
    left, right = aliased(System), aliased(System)
    with wb.db.read.begin() as s:
        row = s.execute(
            select(BATTLES.c.study_id, BATTLES.c.status, BATTLES.c.impression_id, left.name.label("left"),
                   right.name.label("right"), BATTLES.c.left_error, BATTLES.c.right_error)
            .join(left, left.id == BATTLES.c.left_system_id)
            .join(right, right.id == BATTLES.c.right_system_id)
            .where(BATTLES.c.token == token)
        ).first()  # fmt: skip
    if row is None:
        raise LookupError("unknown battle (start a new round)")
    return dict(row._mapping)


def current_choice(wb: Workbench, impression_id: int) -> str | None:
    with wb.db.read.begin() as s:
        return s.scalar(
            select(Vote.choice).where(Vote.impression_id == impression_id).order_by(Vote.id.desc()).limit(1)
        )


def voted_battles(s: Session, study_id: int, public: bool = False) -> list[dict[str, Any]]:
    """Voted battles as ``clean_battle`` records (Model A = the left panel; judge = the visitor's pseudonym)."""
    left, right = aliased(System), aliased(System)
    head = select(func.max(Vote.id).label("id")).group_by(Vote.impression_id).subquery()
    query = (
        select(left.name, right.name, Vote.choice, BATTLES.c.visitor, Vote.created_at, BATTLES.c.token,
               BATTLES.c.language)
        .join(Vote, Vote.impression_id == BATTLES.c.impression_id)
        .join(head, head.c.id == Vote.id)
        .join(left, left.id == BATTLES.c.left_system_id)
        .join(right, right.id == BATTLES.c.right_system_id)
        .where(BATTLES.c.study_id == study_id, Vote.choice != RETRACT)
    )  # fmt: skip
    if public:
        query = query.where(BATTLES.c.moderation != "flagged")
    return [
        {"model_a": a, "model_b": b, "winner": WINNER[choice], "judge": visitor, "tstamp": epoch(at),
         "question_id": token, "language": lang, "anony": True}
        for a, b, choice, visitor, at, token, lang in s.execute(query).all()
    ]  # fmt: skip


def moderation_queue(
    wb: Workbench, study: StudyRef, state: str = "pending", limit: int = 50
) -> list[dict[str, Any]]:
    """Prompts in a moderation state, newest first: source image hash, instruction, language, battles."""
    with wb.db.read.begin() as s:
        st = arena_study(wb, s, study)
        rows = s.execute(
            select(BATTLES.c.source_hash, BATTLES.c.instruction, BATTLES.c.language,
                   func.count().label("battles"), func.max(BATTLES.c.id).label("newest"))
            .where(BATTLES.c.study_id == st.id, BATTLES.c.moderation == state)
            .group_by(BATTLES.c.source_hash, BATTLES.c.instruction, BATTLES.c.language)
            .order_by(func.max(BATTLES.c.id).desc())
            .limit(limit)
        ).all()  # fmt: skip
    return [
        {
            "source_hash": r.source_hash,
            "instruction": r.instruction,
            "language": r.language,
            "battles": r.battles,
        }
        for r in rows
    ]


def moderate(wb: Workbench, study: StudyRef, source_hash: str, instruction: str, decision: str) -> int:
    """Approve or flag a prompt (every battle with this image and instruction); returns the battles changed."""
    if decision not in ("approved", "flagged", "pending"):
        raise ValueError(f"decision must be approved, flagged or pending, got {decision!r}")

    def write(s: Session) -> int:
        st = arena_study(wb, s, study)
        where = and_(BATTLES.c.study_id == st.id, BATTLES.c.source_hash == source_hash,
                     BATTLES.c.instruction == instruction)  # fmt: skip
        return s.connection().execute(update(BATTLES).where(where).values(moderation=decision)).rowcount

    return wb.db.run_write(write)


def public_prompts(wb: Workbench, study: StudyRef, limit: int = 12) -> list[dict[str, Any]]:
    """Recent voted prompts that are not flagged (the public gallery)."""
    with wb.db.read.begin() as s:
        st = arena_study(wb, s, study)
        rows = s.execute(
            select(BATTLES.c.source_hash, BATTLES.c.instruction)
            .where(BATTLES.c.study_id == st.id, BATTLES.c.status == "ready", BATTLES.c.moderation != "flagged")
            .order_by(BATTLES.c.id.desc())
            .limit(limit)
        ).all()  # fmt: skip
    return [{"source_path": str(wb.images.path(h)), "instruction": text} for h, text in rows]


def system_health(wb: Workbench, study: StudyRef) -> list[dict[str, Any]]:
    """Per system (for admins): battles, failures, timeouts, median seconds of its successful runs."""
    with wb.db.read.begin() as s:
        st = arena_study(wb, s, study)
        names = dict(s.execute(select(System.id, System.name).where(System.study_id == st.id)).all())
        rows = s.execute(
            select(BATTLES.c.left_system_id, BATTLES.c.right_system_id, BATTLES.c.left_seconds,
                   BATTLES.c.right_seconds, BATTLES.c.left_error, BATTLES.c.right_error)
            .where(BATTLES.c.study_id == st.id)
        ).all()  # fmt: skip
    stats: dict[str, dict[str, Any]] = {n: {"system": n, "battles": 0, "failed": 0, "timed_out": 0, "seconds": []}
                                        for n in names.values()}  # fmt: skip
    for r in rows:
        for sid, seconds, error in ((r[0], r[2], r[4]), (r[1], r[3], r[5])):
            entry = stats[names[sid]]
            entry["battles"] += 1
            if error is None:
                entry["seconds"].append(seconds)
            elif error.startswith(TIMED_OUT):
                entry["timed_out"] += 1
            else:
                entry["failed"] += 1
    out = []
    for entry in stats.values():
        times = sorted(t for t in entry.pop("seconds") if t is not None)
        entry["median_seconds"] = round(times[len(times) // 2], 3) if times else None
        out.append(entry)
    return out


def epoch(moment: datetime) -> float:
    """Seconds since 1970 (FastChat's ``tstamp``) of a stored timestamp (SQLite returns naive UTC)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
