"""The ``Workbench`` facade: studies, raters, items, blind pairs, votes, curation, statistics.

Every public method runs in its own short transaction and returns plain dicts, so the Gradio handlers can call it
from any worker thread. Writes go through ``Database.run_write`` (BEGIN IMMEDIATE on SQLite; retried on a lost
unique race), which is what makes ``submit_vote``/``submit_decision`` exactly-once per idempotency key.

Errors: ``LookupError`` for unknown studies/raters/impressions, ``ValueError`` for bad input, ``PermissionError``
when a rater answers someone else's screen.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from db.engine import Database, default_url
from db.migrate import upgrade
from db.models import (
    CHOICES,
    DEFAULT_REASONS,
    RETRACT,
    ROLES,
    STUDY_KINDS,
    Assignment,
    GoldItem,
    Impression,
    Item,
    Output,
    Rater,
    Study,
    System,
    Vote,
    utcnow,
)
from workbench import scheduler
from workbench.answers import check_new_key, check_scores, last_standing
from workbench.curation import CurationMixin, StudyRef
from workbench.images import ImageLike, ImageStore
from workbench.validate import MAX_INSTRUCTION_CHARS, check_json, check_label, check_text

PAIR_PRIORITY_TTL_S = 60.0


def _impression_view_statement():
    """What a rater's screen needs for one impression (built once; see scheduler.py on why)."""
    imps, items, outputs = Impression.__table__, Item.__table__, Output.__table__
    left, right = outputs.alias("left_output"), outputs.alias("right_output")
    return (
        select(
            imps.c.study_id, items.c.id.label("item_id"), items.c.instruction, items.c.language, items.c.category,
            items.c.source_hash, left.c.image_hash.label("left_hash"), right.c.image_hash.label("right_hash"),
        )
        .join(items, items.c.id == imps.c.item_id)
        .join(left, left.c.id == imps.c.left_output_id)
        .join(right, right.c.id == imps.c.right_output_id)
        .where(imps.c.id == bindparam("impression_id"))
    )  # fmt: skip


_IMPRESSION_VIEW = _impression_view_statement()
_IMPRESSIONS, _ASSIGNMENTS, _VOTES = Impression.__table__, Assignment.__table__, Vote.__table__
_IMPRESSION_STATE = select(
    _IMPRESSIONS.c.rater_id,
    _IMPRESSIONS.c.status,
    _IMPRESSIONS.c.assignment_id,
    _IMPRESSIONS.c.item_id,
    select(func.max(_VOTES.c.id))
    .where(_VOTES.c.impression_id == _IMPRESSIONS.c.id)
    .scalar_subquery()
    .label("prev"),
).where(_IMPRESSIONS.c.id == bindparam("impression_id"))
_VOTE_BY_KEY = select(_VOTES.c.id, _VOTES.c.impression_id, _VOTES.c.rater_id).where(
    _VOTES.c.idempotency_key == bindparam("key")
)
_NEW_VOTE = insert(_VOTES).returning(_VOTES.c.id)
_SET_IMPRESSION = (
    update(_IMPRESSIONS).where(_IMPRESSIONS.c.id == bindparam("b_id")).values(status=bindparam("b_status"))
)
_SET_ASSIGNMENT = (
    update(_ASSIGNMENTS).where(_ASSIGNMENTS.c.id == bindparam("b_id")).values(status=bindparam("b_status"))
)


def _set_status(
    conn, impression_id: int, assignment_id: int | None, impression: str, assignment: str
) -> None:
    """Move an impression (and its assignment) to a new status in the caller's transaction."""
    conn.execute(_SET_IMPRESSION, {"b_id": impression_id, "b_status": impression})
    if assignment_id is not None:
        conn.execute(_SET_ASSIGNMENT, {"b_id": assignment_id, "b_status": assignment})


_STATUS_COUNTS = (
    select(_IMPRESSIONS.c.status, func.count())
    .where(
        _IMPRESSIONS.c.rater_id == bindparam("rater_id"),
        _IMPRESSIONS.c.study_id == bindparam("study_id"),
        _IMPRESSIONS.c.status.in_(("voted", "skipped")),
    )
    .group_by(_IMPRESSIONS.c.status)
)
ITEM_TOTAL_TTL_S = 10.0


class Workbench(CurationMixin):
    """Facade over the database and the image store. Thread-safe; create one per process."""

    def __init__(self, db_url: str | None = None, data_dir: str | Path = "data") -> None:
        self.data_dir = Path(data_dir)
        self.db_url = db_url or default_url(self.data_dir)
        self.db = Database.connect(self.db_url)
        self.images = ImageStore(self.data_dir / "images")
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        self._rater_ids: dict[str, int] = {}
        self._studies: dict[StudyRef, scheduler.StudyRecord] = {}
        self._totals: dict[int, tuple[float, int]] = {}
        self._priority_cache: dict[int, tuple[float, dict[tuple[int, int], float]]] = {}

    # ------------------------------------------------------------------ setup
    def init(self) -> None:
        """Create or upgrade the schema (alembic migrations)."""
        upgrade(self.db.engine)

    def close(self) -> None:
        self.db.dispose()

    def _rng_fork(self) -> random.Random:
        # random.Random is not safe to share between threads; give each call its own seeded generator.
        with self._rng_lock:
            return random.Random(self._rng.getrandbits(64))

    def _study(self, s: Session, study: StudyRef) -> Study:
        row = (
            s.get(Study, study)
            if isinstance(study, int)
            else s.scalars(select(Study).where(Study.name == study)).first()
        )
        if row is None:
            raise LookupError(f"unknown study {study!r}")
        return row

    def _study_record(self, s: Session, study: StudyRef) -> scheduler.StudyRecord:
        """Scheduler settings of a study, cached by name and id (studies are never edited after creation)."""
        record = self._studies.get(study)
        if record is None:
            row = self._study(s, study)
            record = scheduler.StudyRecord(row.id, row.name, row.kind, row.k, row.gold_rate, row.pair_mode)
            self._studies[row.id] = self._studies[row.name] = record
        return record

    def _rater_id(self, s: Session, handle: str) -> int:
        """Rater id by handle, cached (raters are never deleted or renamed)."""
        cached = self._rater_ids.get(handle)
        if cached is None:
            cached = self._rater(s, handle).id
            self._rater_ids[handle] = cached
        return cached

    def _rater(self, s: Session, handle: str) -> Rater:
        row = s.scalars(select(Rater).where(Rater.handle == handle)).first()
        if row is None:
            raise LookupError(
                f"unknown rater {handle!r} (add it with `python -m workbench raters add {handle}`)"
            )
        return row

    def create_study(
        self,
        name: str,
        kind: str = "preference",
        k: int = 3,
        gold_rate: float = 0.0,
        guidelines: str = "",
        reasons: Iterable[str] | None = None,
        pair_mode: str = "balanced",
    ) -> int:
        """Create a study and return its id. ``reasons`` is the curation taxonomy (default: DEFAULT_REASONS)."""
        if kind not in STUDY_KINDS:
            raise ValueError(f"kind must be one of {STUDY_KINDS}, got {kind!r}")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if not 0.0 <= gold_rate <= 1.0:
            raise ValueError(f"gold_rate must be within [0, 1], got {gold_rate!r}")
        if pair_mode not in ("balanced", "uncertain"):
            raise ValueError(f"pair_mode must be 'balanced' or 'uncertain', got {pair_mode!r}")
        reason_list = list(DEFAULT_REASONS if reasons is None else reasons)
        if len(set(reason_list)) != len(reason_list) or not all(
            isinstance(r, str) and r for r in reason_list
        ):
            raise ValueError("reasons must be distinct non-empty strings")
        check_label(name, "the study name", required=True)
        check_text(guidelines or "", "the guidelines", required=False)
        for i, reason in enumerate(reason_list):
            check_label(reason, f"reason {i + 1}", required=True)

        def write(s: Session) -> int:
            if s.scalars(select(Study.id).where(Study.name == name)).first() is not None:
                raise ValueError(f"a study named {name!r} already exists")
            study = Study(
                name=name,
                kind=kind,
                k=k,
                gold_rate=gold_rate,
                guidelines=guidelines,
                reasons=reason_list,
                pair_mode=pair_mode,
            )
            s.add(study)
            s.flush()
            return study.id

        return self.db.run_write(write)

    def study_info(self, study: StudyRef) -> dict[str, Any]:
        """Name, kind, k, gold rate, guidelines and reason taxonomy of a study (safe to show raters)."""
        with self.db.read.begin() as s:
            st = self._study(s, study)
            return {
                "study_id": st.id,
                "name": st.name,
                "kind": st.kind,
                "k": st.k,
                "gold_rate": st.gold_rate,
                "guidelines": st.guidelines,
                "reasons": list(st.reasons),
                "pair_mode": st.pair_mode,
            }

    def list_studies(self) -> list[dict[str, Any]]:
        with self.db.read.begin() as s:
            names = s.scalars(select(Study.name).order_by(Study.id)).all()
        return [self.study_info(n) for n in names]

    def add_rater(self, handle: str, role: str = "rater") -> int:
        """Register a rater (idempotent for the same handle and role); returns the rater id."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        handle = (handle or "").strip()
        if not handle or len(handle) > 100:
            raise ValueError("a rater handle must be 1-100 characters")
        check_label(handle, "the rater handle", required=True)

        def write(s: Session) -> int:
            row = s.scalars(select(Rater).where(Rater.handle == handle)).first()
            if row is not None:
                if row.role != role:
                    raise ValueError(f"rater {handle!r} already exists with role {row.role!r}")
                return row.id
            row = Rater(handle=handle, role=role)
            s.add(row)
            s.flush()
            return row.id

        return self.db.run_write(write)

    def list_raters(self) -> list[dict[str, Any]]:
        with self.db.read.begin() as s:
            rows = s.scalars(select(Rater).order_by(Rater.id)).all()
            return [
                {"handle": r.handle, "role": r.role, "created_at": r.created_at.isoformat()} for r in rows
            ]

    # ------------------------------------------------------------------ content
    def system_id(self, s: Session, study_id: int, name: str) -> int:
        """Id of system ``name`` in the study, created on first use."""
        check_label(name, "the system name", required=True)
        found = s.scalars(select(System.id).where(System.study_id == study_id, System.name == name)).first()
        if found is not None:
            return found
        row = System(study_id=study_id, name=name)
        s.add(row)
        s.flush()
        return row.id

    def insert_item(
        self,
        s: Session,
        study: Study,
        source_hash: str,
        instruction: str,
        output_hashes: Mapping[str, str],
        language: str = "en",
        category: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        key: str | None = None,
        gold: str | None = None,
        rng: random.Random | None = None,
    ) -> int:
        """Insert one item with its outputs inside the caller's transaction (images already stored).

        ``gold``: None (regular item), the name of the system whose output must win, or "both_bad".
        """
        if study.kind == "curation":
            raise ValueError(
                f"study {study.name!r} is a {study.kind} study; items belong to preference and arena studies"
            )
        check_text(instruction, "instruction", max_chars=MAX_INSTRUCTION_CHARS)
        for label, value in (("language", language), ("category", category), ("key", key), ("gold", gold)):
            check_label(value or None, label)
        metadata = check_json(dict(metadata), "metadata") if metadata else None
        if len(output_hashes) < 2:
            raise ValueError(f"an item needs outputs from at least two systems, got {sorted(output_hashes)}")
        if gold is not None and gold != "both_bad" and gold not in output_hashes:
            raise ValueError(
                f"gold answer {gold!r} is neither 'both_bad' nor one of the systems {sorted(output_hashes)}"
            )
        check_new_key(s, Item, study, key, "item")
        item = Item(
            study_id=study.id,
            external_key=key,
            source_hash=source_hash,
            instruction=instruction,
            language=language or "en",
            category=category,
            meta=metadata,
            is_gold=gold is not None,
            assigned_count=0,
            order_key=(rng or self._rng_fork()).random(),
        )
        s.add(item)
        s.flush()
        by_system = {}
        for name, digest in output_hashes.items():
            out = Output(item_id=item.id, system_id=self.system_id(s, study.id, name), image_hash=digest)
            s.add(out)
            by_system[name] = out
        s.flush()
        if gold is not None:
            good = by_system.get(gold)
            s.add(
                GoldItem(
                    item_id=item.id,
                    good_output_id=good.id if good else None,
                    expected_choice=None if good else "both_bad",
                )
            )
        self._totals.pop(study.id, None)  # the progress total changed
        return item.id

    def add_item(
        self,
        study: StudyRef,
        source_image: ImageLike,
        instruction: str,
        language: str = "en",
        category: str | None = None,
        outputs: Mapping[str, ImageLike] | None = None,
        metadata: Mapping[str, Any] | None = None,
        key: str | None = None,
        gold: str | None = None,
    ) -> int:
        """Add an item with one output per system (paths, bytes or PIL images); returns the item id."""
        source_hash = self.images.put(source_image)
        output_hashes = {name: self.images.put(img) for name, img in (outputs or {}).items()}
        return self.db.run_write(
            lambda s: self.insert_item(
                s,
                self._study(s, study),
                source_hash,
                instruction,
                output_hashes,
                language,
                category,
                metadata,
                key,
                gold,
            )
        )

    # ------------------------------------------------------------------ preference rating
    def _impression_view(self, s: Session, impression_id: int, rater_id: int) -> dict[str, Any]:
        conn = s.connection()
        row = conn.execute(_IMPRESSION_VIEW, {"impression_id": impression_id}).one()
        # Skipped items never come back to this rater, so they leave the rater's own total.
        counts = dict(conn.execute(_STATUS_COUNTS, {"rater_id": rater_id, "study_id": row.study_id}).all())
        return {
            "impression_id": impression_id,
            "item_id": row.item_id,
            "instruction": row.instruction,
            "language": row.language,
            "category": row.category,
            "source_path": str(self.images.path(row.source_hash)),
            "left_path": str(self.images.path(row.left_hash)),
            "right_path": str(self.images.path(row.right_hash)),
            "progress": {
                "done": counts.get("voted", 0),
                "skipped": counts.get("skipped", 0),
                "total": self._item_total(s, row.study_id),
            },
        }

    def _item_total(self, s: Session, study_id: int) -> int:
        """Number of regular items in the study, cached briefly: counting 100k rows costs ~10-20 ms per call."""
        cached = self._totals.get(study_id)
        if cached is None or time.monotonic() - cached[0] > ITEM_TOTAL_TTL_S:
            cached = (time.monotonic(), scheduler.count_items(s.connection(), study_id))
            self._totals[study_id] = cached
        return cached[1]

    def next_item(self, study: StudyRef, rater_handle: str) -> dict[str, Any] | None:
        """The next blind pair for the rater (an unanswered one first), or None when they are done.

        The dict never carries a system name or id; the sides are logged on the impression row.
        """
        rng = self._rng_fork()
        priority = self._pair_priority(study)

        def write(s: Session) -> dict[str, Any] | None:
            st, rater_id = self._study_record(s, study), self._rater_id(s, rater_handle)
            if st.kind != "preference":
                raise ValueError(f"study {st.name!r} is a curation study; use next_candidate")
            conn = s.connection()
            scheduler.lock_rater(conn, rater_id)
            imp = scheduler.open_impression(conn, st.id, rater_id) or scheduler.create_impression(
                conn, st, rater_id, rng, priority
            )
            return None if imp is None else self._impression_view(s, imp, rater_id)

        return self.db.run_write(write)

    @staticmethod
    def _own_impression(conn, impression_id: int, rater_id: int):  # Connection, Row
        """State of an impression shown to this rater (status, assignment, item, newest vote id); else an error."""
        imp = conn.execute(_IMPRESSION_STATE, {"impression_id": impression_id}).first()
        if imp is None:
            raise LookupError(f"unknown impression {impression_id!r}")
        if imp.rater_id != rater_id:
            raise PermissionError(f"impression {impression_id} was shown to another rater")
        return imp

    def submit_vote(
        self,
        impression_id: int,
        rater_handle: str,
        choice: str,
        idempotency_key: str,
        scores: Mapping[str, float] | None = None,
        comment: str = "",
        seconds_on_task: float | None = None,
    ) -> dict[str, Any]:
        """Store a vote (A = left, B = right, tie, both_bad). Same key again -> ``stored: False``, nothing new.

        Voting again on an answered impression (with a new key) is an edit: a new row superseding the old one.
        """
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES}, got {choice!r}")
        checked = check_scores(scores)
        comment = check_text(comment or "", "comment", required=False)
        if seconds_on_task is not None and (
            not isinstance(seconds_on_task, int | float) or seconds_on_task < 0
        ):
            raise ValueError(f"seconds_on_task must be a non-negative number, got {seconds_on_task!r}")

        if not idempotency_key or not isinstance(idempotency_key, str):
            raise ValueError("an idempotency_key (non-empty string) is required")
        values = {
            "impression_id": impression_id,
            "choice": choice,
            "comment": comment,
            "seconds_on_task": None if seconds_on_task is None else float(seconds_on_task),
            "idempotency_key": idempotency_key,
            "created_at": utcnow(),
            **checked,
        }

        # Prebuilt table-level Core statements on the session's connection (no ORM unit of work): this is the
        # hot path, one short BEGIN IMMEDIATE transaction of at most five statements.
        def write(s: Session) -> dict[str, Any]:
            rater_id = self._rater_id(s, rater_handle)
            conn = s.connection()
            existing = conn.execute(_VOTE_BY_KEY, {"key": idempotency_key}).first()
            if existing is not None:
                if existing.impression_id != impression_id or existing.rater_id != rater_id:
                    raise ValueError(f"idempotency key {idempotency_key!r} was already used for another vote")
                return {"vote_id": existing.id, "stored": False}
            imp = self._own_impression(conn, impression_id, rater_id)
            if imp.status == "skipped":
                raise ValueError(f"impression {impression_id} was skipped; it cannot take a vote")
            vote_id = conn.scalar(_NEW_VOTE, {"rater_id": rater_id, "supersedes_id": imp.prev, **values})
            _set_status(conn, impression_id, imp.assignment_id, "voted", "done")
            return {"vote_id": vote_id, "stored": True}

        return self.db.run_write(write)

    def undo_vote(self, study: StudyRef, rater_handle: str) -> dict[str, Any] | None:
        """Withdraw the rater's latest standing vote in the study (a superseding "retract" row; history kept).

        Returns the impression to show again (it is open again and comes first in ``next_item``), or None;
        ``previous`` holds the withdrawn answer so the screen can show it pre-selected.
        """

        def write(s: Session) -> dict[str, Any] | None:
            st, rater = self._study(s, study), self._rater(s, rater_handle)
            last = last_standing(s, Vote, Vote.choice, Impression, Vote.impression_id, st.id, rater.id)
            if last is None:
                return None
            s.add(
                Vote(
                    impression_id=last.impression_id,
                    rater_id=rater.id,
                    choice=RETRACT,
                    idempotency_key=f"undo-{uuid.uuid4()}",
                    supersedes_id=last.id,
                )
            )
            imp = s.get(Impression, last.impression_id)
            imp.status = "open"
            if imp.assignment_id is not None:
                s.get(Assignment, imp.assignment_id).status = "open"
            s.flush()
            previous = {k: getattr(last, k) for k in ("choice", "semantic", "quality", "overall", "comment")}
            return {**self._impression_view(s, imp.id, rater.id), "previous": previous}

        return self.db.run_write(write)

    def skip(self, impression_id: int, rater_handle: str) -> None:
        """Skip an unanswered impression: the rater will not see that item again and its slot of k is freed."""

        def write(s: Session) -> None:
            conn = s.connection()
            imp = self._own_impression(conn, impression_id, self._rater_id(s, rater_handle))
            if imp.status == "skipped":
                return
            if imp.status == "voted":
                raise ValueError(f"impression {impression_id} already has a vote; undo it first")
            _set_status(conn, impression_id, imp.assignment_id, "skipped", "skipped")
            scheduler.release_item(conn, imp.item_id)

        self.db.run_write(write)

    # ------------------------------------------------------------------ statistics
    def stats(self, study: StudyRef, **options: Any) -> dict[str, Any]:
        """Leaderboard, win matrix, per-category, agreement, position bias, rater quality and curation stats."""
        from workbench.results import study_stats

        return study_stats(self, study, **options)

    def export_accepted(self, study: StudyRef, out_dir: str | Path, rule: str = "majority") -> Path:
        """Accepted curation triplets as official fine-tuning metadata (``out_dir/metadata.json`` + images/)."""
        from workbench.export import export_accepted

        return export_accepted(self, study, out_dir, rule=rule)

    def _pair_priority(self, study: StudyRef) -> dict[tuple[int, int], float] | None:
        """For "uncertain" studies: overlap of the systems' rating CIs per pair (cached for a minute)."""
        with self.db.read.begin() as s:
            st = self._study_record(s, study)
            if st.pair_mode != "uncertain":
                return None
            cached = self._priority_cache.get(st.id)
            if cached and time.monotonic() - cached[0] < PAIR_PRIORITY_TTL_S:
                return cached[1]
            systems = dict(s.execute(select(System.name, System.id).where(System.study_id == st.id)).all())
        from workbench.results import ci_overlap_priority, quick_leaderboard

        priority = ci_overlap_priority(quick_leaderboard(self, st.id), systems)
        self._priority_cache[st.id] = (time.monotonic(), priority)
        return priority
