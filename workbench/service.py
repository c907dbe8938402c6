"""The ``Workbench`` facade: studies, raters, items, blind pairs, votes, curation, statistics.

It composes the halves that live in their own modules: ``curation.Curation`` (candidates and decisions),
``studies`` (settings, management, audit log), ``leases`` (claims that lapse) and ``scheduler`` (what next).

Every public method runs in its own short transaction and returns plain dicts, so the Gradio handlers can call it
from any worker thread. Writes go through ``Database.run_write`` (BEGIN IMMEDIATE on SQLite; retried on a lost
unique race), which is what makes ``submit_vote``/``submit_decision`` exactly-once per idempotency key.

Errors: ``LookupError`` for unknown studies/raters/impressions, ``ValueError`` for bad input, ``PermissionError``
when a rater answers someone else's screen.
"""

from __future__ import annotations

import functools
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from db.engine import Database, default_url
from db.migrate import upgrade
from db.models import (
    CHOICES,
    RETRACT,
    ROLES,
    Assignment,
    CurationCandidate,
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
from workbench import leases, rater_sessions, scheduler, studies
from workbench.answers import answered_before, check_new_key, check_scores, last_standing
from workbench.curation_queue import Curation
from workbench.image_store import ImageLike, ImageStore
from workbench.lookup import StudyRef, rater_row, study_row
from workbench.sides import LEFT_OUTPUT, RIGHT_OUTPUT, join_sides
from workbench.studies import StudySpec
from workbench.validate import MAX_INSTRUCTION_CHARS, check_json, check_label, check_text

PAIR_PRIORITY_TTL_S = 60.0


def _impression_view_statement():
    """What a rater's screen needs for one impression (built once; see scheduler.py on why)."""
    imps, items = Impression.__table__, Item.__table__
    return join_sides(
        select(
            imps.c.study_id, items.c.id.label("item_id"), items.c.instruction, items.c.language, items.c.category,
            items.c.source_hash, LEFT_OUTPUT.c.image_hash.label("left_hash"),
            RIGHT_OUTPUT.c.image_hash.label("right_hash"),
        ).join(items, items.c.id == imps.c.item_id),
        systems=False,
    ).where(imps.c.id == bindparam("impression_id"))  # fmt: skip


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
_VOTE_CHOICE = select(_VOTES.c.choice).where(_VOTES.c.id == bindparam("vote_id"))
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


class Workbench:
    """Facade over the database and the image store. Thread-safe; create one per process."""

    def __init__(self, db_url: str | None = None, data_dir: str | Path = "data") -> None:
        self.data_dir = Path(data_dir)
        self.db_url = db_url or default_url(self.data_dir)
        self.db = Database.connect(self.db_url)
        self.images = ImageStore(self.data_dir / "images")
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        self._rater_ids: dict[str, int] = {}
        self._records, self.sweeper = studies.RecordCache(), leases.Sweeper()
        self.curation = Curation(self.db, self.images, self._rng_fork, self._study_record, self.sweeper)
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

    def _study_record(self, s: Session, study: StudyRef) -> scheduler.StudyRecord:
        """Scheduler settings of a study (cached for a second: admins may edit a study while raters work)."""
        return self._records.get(s, study)

    def _rater_id(self, s: Session, handle: str) -> int:
        """Rater id by handle, cached (raters are never deleted or renamed)."""
        cached = self._rater_ids.get(handle)
        if cached is None:
            cached = rater_row(s, handle).id
            self._rater_ids[handle] = cached
        return cached

    # ------------------------------------------------------------------ studies
    def create_study(
        self,
        name: str,
        kind: str = "preference",
        k: int = 3,
        gold_rate: float = 0.0,
        guidelines: str = "",
        reasons: Iterable[str] | None = None,
        pair_mode: str = "balanced",
        actor: str = "system",
        **settings: Any,
    ) -> int:
        """Create a study and return its id. ``reasons`` is the curation taxonomy (default: DEFAULT_REASONS);
        ``settings``: ``lease_seconds``, ``quota``, ``completion_code``, ``redirect_url``."""
        reason_list = None if reasons is None else list(reasons)
        check_label(name, "the study name", required=True)
        check_text(guidelines or "", "the guidelines", required=False)
        for i, reason in enumerate(reason_list or ()):
            check_label(reason, f"reason {i + 1}", required=True)
        spec = StudySpec(name, kind, k, gold_rate, guidelines, reason_list, pair_mode, **settings)
        return self.db.run_write(lambda s: studies.insert_study(s, spec, actor).id)

    def study_info(self, study: StudyRef) -> dict[str, Any]:
        """Settings of a study (safe to show raters: no system names)."""
        with self.db.read.begin() as s:
            return _info(study_row(s, study))

    def list_studies(self, include_archived: bool = True) -> list[dict[str, Any]]:
        """Every study's settings (archived ones are flagged ``archived``; left out with include_archived=False)."""
        with self.db.read.begin() as s:
            rows = s.scalars(select(Study).order_by(Study.id)).all()
            return [_info(r) for r in rows if include_archived or r.archived_at is None]

    def update_study(self, study: StudyRef, actor: str = "system", **changes: Any) -> dict[str, Any]:
        """Edit name, guidelines, reasons, k (raise only), lease_seconds, quota, completion_code, redirect_url;
        returns ``{setting: [old, new]}`` (audited)."""
        diff = self.db.run_write(lambda s: studies.update_study(s, study, actor, changes))
        self._totals.clear()
        self._records.clear()
        return diff

    def archive_study(self, study: StudyRef, actor: str = "system", archived: bool = True) -> bool:
        """Hide a study from raters (kept in results and exports), or bring it back; audited."""
        changed = self.db.run_write(lambda s: studies.set_archived(s, study, actor, archived))
        self._records.clear()
        return changed

    def delete_study(
        self, study: StudyRef, confirm: str, export_dir: str | Path, actor: str = "system"
    ) -> dict[str, Any]:
        """Export every table of the study into ``export_dir/<name>-<UTC time>/`` first, then delete it.

        ``confirm`` must be the study's name. The audit log keeps the deletion (with the export folder).
        """
        from workbench.export import export_study

        info = self.study_info(study)
        if confirm != info["name"]:
            raise ValueError(f"type the study's name ({info['name']!r}) to confirm deleting it")
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in info["name"])[:80] or "study"
        folder = Path(export_dir) / f"{safe}-{stamp}"
        export_study(self, info["study_id"], folder)
        report = self.db.run_write(
            lambda s: studies.delete_rows(s, info["study_id"], actor, confirm, str(folder))
        )
        self._totals.pop(info["study_id"], None)
        self._records.clear()
        return report

    def audit_log(self, study: StudyRef | None = None) -> list[dict[str, Any]]:
        """Changes to studies, newest first (one study's when given)."""
        with self.db.read.begin() as s:
            return studies.audit_rows(s, None if study is None else study_row(s, study).id)

    def release_claims(self, study: StudyRef, rater_handle: str, actor: str = "system") -> int:
        """Return every open claim of a rater in the study to the pool now (as if their lease lapsed); audited.

        An answer still arriving from their screen is kept, like any late answer.
        """

        def write(s: Session) -> int:
            st, rater = study_row(s, study), rater_row(s, rater_handle)
            released = leases.release_rater(s.connection(), st.id, rater.id)
            if released:
                studies.audit(s, st, actor, "release", {"rater": rater.handle, "claims": released})
            return released

        return self.db.run_write(write)

    def study_progress(self, study: StudyRef) -> dict[str, Any]:
        """Done / in progress / pending / expired / extra (beyond k) counts, in slots of k, and per rater."""
        with self.db.read.begin() as s:
            st = self._study_record(s, study)
            conn = s.connection()
            if st.kind == "preference":
                n = scheduler.count_regular_items(conn, st.id)
            else:
                n = s.scalar(select(func.count()).select_from(CurationCandidate).where(
                    CurationCandidate.study_id == st.id)) or 0  # fmt: skip
            report = leases.progress(conn, st.id, st.lease_seconds, n * st.k)
            return {"study": st.name, "items": n, "k": st.k, "lease_seconds": st.lease_seconds, **report}

    def rater_quota_done(self, study: StudyRef, rater_handle: str) -> bool:
        """Whether the rater has answered the study's per-rater quota (False when the study sets none)."""
        with self.db.read.begin() as s:
            st = self._study_record(s, study)
            if st.quota is None:
                return False
            return studies.answers_done(s.connection(), st.id, self._rater_id(s, rater_handle)) >= st.quota

    def held_by_others(self, study: StudyRef, rater_handle: str) -> int:
        """How many items (curation: candidates) the rater has not seen are held by other raters' live claims.

        When ``next_item`` / ``next_candidate`` gives None while this is above 0, the rater is not done for good:
        a claim that lapses brings its item back.
        """
        with self.db.read.begin() as s:
            st = self._study_record(s, study)
            kind = "curation" if st.kind == "curation" else "preference"
            rater_id = self._rater_id(s, rater_handle)
            return leases.held_by_others(s.connection(), st.id, rater_id, kind, st.lease_seconds)

    def record_rater_session(
        self, study: StudyRef, rater_handle: str, platform: str, external_study: str, session: str
    ) -> bool:
        """Store a recruiting platform's ids for the rater's visit to the study (``platform`` "prolific": its
        STUDY_ID and SESSION_ID). Idempotent: True when the visit is new."""
        ids = rater_sessions.check_ids(platform, external_study, session)

        def write(s: Session) -> bool:
            st = self._study_record(s, study)
            return rater_sessions.record(s.connection(), st.id, self._rater_id(s, rater_handle), *ids)

        return self.db.run_write(write)

    def rater_sessions(self, study: StudyRef) -> list[dict[str, Any]]:
        """The platform ids stored for the study's raters (``rater``, ``platform``, ``external_study``,
        ``session``, ``created_at``), oldest first."""
        with self.db.read.begin() as s:
            return rater_sessions.listing(s.connection(), self._study_record(s, study).id)

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
                study_row(s, study),
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
            studies.check_open(st, "preference")
            conn = s.connection()
            scheduler.lock_rater(conn, rater_id)
            self.sweeper.sweep(conn, st.id, st.lease_seconds)
            shown = scheduler.open_impression(conn, st.id, rater_id)
            if shown is not None:  # the same screen again (reload, second tab): its lease starts over
                leases.touch(conn, shown.assignment_id)
                imp = shown.id
            elif studies.may_open_screen(conn, st, rater_id):
                imp = leases.claim_or_sweep(
                    conn, st.id, st.lease_seconds,
                    lambda: scheduler.create_impression(conn, st, rater_id, rng, priority),
                )  # fmt: skip
            else:
                imp = None
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
        replace: bool = False,
    ) -> dict[str, Any]:
        """Store a vote (A = left, B = right, tie, both_bad). Same key again -> ``stored: False``, nothing new.

        ``outcome`` says what happened: "stored"; "duplicate" (this key was stored before); "same" (the screen
        already holds this answer, e.g. from another tab); "conflict" (it holds a different one, ``previous``:
        nothing is stored unless the call is repeated with ``replace=True``, which supersedes it). A vote on a
        screen whose lease lapsed is kept; ``extra`` is True when another rater had taken its slot of k.
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
                return {"vote_id": existing.id, "stored": False, "outcome": "duplicate"}
            imp = self._own_impression(conn, impression_id, rater_id)
            if imp.status == "skipped":
                raise ValueError(f"impression {impression_id} was skipped; it cannot take a vote")
            if imp.prev is not None and not replace:
                earlier = answered_before(conn.scalar(_VOTE_CHOICE, {"vote_id": imp.prev}), choice)
                if earlier is not None:
                    return {"vote_id": imp.prev, **earlier}
            vote_id = conn.scalar(_NEW_VOTE, {"rater_id": rater_id, "supersedes_id": imp.prev, **values})
            conn.execute(_SET_IMPRESSION, {"b_id": impression_id, "b_status": "voted"})
            extra = leases.settle(conn, imp.assignment_id)
            return {"vote_id": vote_id, "stored": True, "outcome": "stored", "extra": extra}

        return self.db.run_write(write)

    def undo_vote(self, study: StudyRef, rater_handle: str) -> dict[str, Any] | None:
        """Withdraw the rater's latest standing vote in the study (a superseding "retract" row; history kept).

        Returns the impression to show again (it is open again and comes first in ``next_item``), or None;
        ``previous`` holds the withdrawn answer so the screen can show it pre-selected.
        """

        def write(s: Session) -> dict[str, Any] | None:
            st, rater = study_row(s, study), rater_row(s, rater_handle)
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
                claim = s.get(Assignment, imp.assignment_id)
                claim.status, claim.active_at = "open", utcnow()  # on screen again: a fresh lease
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
            if imp.status != "expired":  # a lapsed claim gave its slot back already
                scheduler.release_item(conn, imp.item_id)

        self.db.run_write(write)

    # ------------------------------------------------------------------ statistics
    def stats(self, study: StudyRef, **options: Any) -> dict[str, Any]:
        """Leaderboard, win matrix, per-category, agreement, position bias, rater quality and curation stats."""
        from workbench.study_frames import study_stats

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
        from workbench.study_frames import ci_overlap_priority, quick_leaderboard

        priority = ci_overlap_priority(quick_leaderboard(self, st.id), systems)
        self._priority_cache[st.id] = (time.monotonic(), priority)
        return priority


def _forward(name: str) -> Callable[..., Any]:
    """A facade method that calls ``self.curation.<name>`` (same signature and docstring as in ``Curation``)."""
    target = getattr(Curation, name)

    @functools.wraps(target)
    def method(self: Workbench, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.curation, name)(*args, **kwargs)

    return method


# The curation half lives in ``Curation`` (composition); the facade keeps one entry point for callers.
for _name in ("add_candidate", "insert_candidate", "next_candidate", "submit_decision", "undo_decision"):
    setattr(Workbench, _name, _forward(_name))


def _info(st: Study) -> dict[str, Any]:
    """The settings of a study row as a plain dict."""
    return {
        "study_id": st.id,
        "name": st.name,
        "kind": st.kind,
        "k": st.k,
        "gold_rate": st.gold_rate,
        "guidelines": st.guidelines,
        "reasons": list(st.reasons),
        "pair_mode": st.pair_mode,
        "lease_seconds": st.lease_seconds,
        "quota": st.quota,
        "completion_code": st.completion_code,
        "redirect_url": st.redirect_url,
        "archived": st.archived_at is not None,
    }
