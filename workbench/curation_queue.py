"""Curation half of the ``Workbench`` facade: candidate triplets, the review queue and append-only decisions.

The facade holds one ``Curation`` (composition) and forwards its curation methods to it; this class needs only the
database, the image store and a source of per-call random generators.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.engine import Database
from db.models import DECISIONS, RETRACT, Assignment, CurationCandidate, Decision, Study, utcnow
from workbench import leases, scheduler, studies
from workbench.answers import answered_before, by_key, check_new_key, last_standing, latest
from workbench.image_store import ImageLike, ImageStore
from workbench.lookup import StudyRef, rater_row, study_row
from workbench.scheduler import StudyRecord
from workbench.validate import MAX_INSTRUCTION_CHARS, check_json, check_label, check_number, check_text


def _check_new_triplet(
    s: Session, study: Study, source_hash: str, instruction: str, target_hash: str
) -> None:
    """Refuse a (source, instruction, output) triplet the study already holds: a repeated send or import would
    otherwise queue the same review twice."""
    taken = s.scalars(
        select(CurationCandidate.id).where(
            CurationCandidate.study_id == study.id,
            CurationCandidate.source_hash == source_hash,
            CurationCandidate.target_hash == target_hash,
            CurationCandidate.instruction == instruction,
        )
    ).first()
    if taken is not None:
        raise ValueError(
            f"study {study.name!r} already holds this (source, instruction, output) triplet (candidate {taken})"
        )


class Curation:
    """add_candidate / next_candidate / submit_decision / undo_decision."""

    def __init__(
        self,
        db: Database,
        images: ImageStore,
        rng_fork: Callable[[], random.Random],
        study_record: Callable[[Session, StudyRef], StudyRecord],
        sweeper: leases.Sweeper,
    ) -> None:
        self.db, self.images, self._rng_fork = db, images, rng_fork
        self._study_record, self._sweeper = study_record, sweeper

    def insert_candidate(
        self,
        s: Session,
        study: Study,
        source_hash: str,
        instruction: str,
        target_hash: str,
        filter_score: float | None = None,
        filter_reason: str | None = None,
        category: str | None = None,
        language: str = "en",
        metadata: Mapping[str, Any] | None = None,
        key: str | None = None,
        rng: random.Random | None = None,
    ) -> int:
        """Insert one curation candidate inside the caller's transaction (images already stored)."""
        if study.kind != "curation":
            raise ValueError(
                f"study {study.name!r} is a {study.kind} study; candidates belong to curation studies"
            )
        check_text(instruction, "instruction", max_chars=MAX_INSTRUCTION_CHARS)
        for label, value in (("language", language), ("category", category), ("key", key)):
            check_label(value or None, label)
        check_text(filter_reason or "", "filter_reason", required=False)
        filter_score = check_number(filter_score, "filter_score")
        metadata = check_json(dict(metadata), "metadata") if metadata else None
        check_new_key(s, CurationCandidate, study, key, "candidate")
        _check_new_triplet(s, study, source_hash, instruction, target_hash)
        row = CurationCandidate(
            study_id=study.id,
            external_key=key,
            source_hash=source_hash,
            target_hash=target_hash,
            instruction=instruction,
            language=language or "en",
            category=category,
            filter_score=filter_score,
            filter_reason=filter_reason,
            meta=metadata,
            assigned_count=0,
            order_key=(rng or self._rng_fork()).random(),
        )
        s.add(row)
        s.flush()
        return row.id

    def add_candidate(
        self,
        study: StudyRef,
        source_image: ImageLike,
        instruction: str,
        target_image: ImageLike,
        filter_score: float | None = None,
        filter_reason: str | None = None,
        category: str | None = None,
        language: str = "en",
        metadata: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> int:
        """Add a (source, instruction, target) triplet to a curation study; returns the candidate id."""
        source_hash, target_hash = self.images.put(source_image), self.images.put(target_image)
        return self.db.run_write(
            lambda s: self.insert_candidate(
                s,
                study_row(s, study),
                source_hash,
                instruction,
                target_hash,
                filter_score,
                filter_reason,
                category,
                language,
                metadata,
                key,
            )
        )

    # ------------------------------------------------------------------ curation
    def _candidate_view(self, s: Session, assignment: Assignment) -> dict[str, Any]:
        cand = s.get(CurationCandidate, assignment.candidate_id)
        done = s.scalar(
            select(func.count()).where(
                Assignment.rater_id == assignment.rater_id,
                Assignment.study_id == assignment.study_id,
                Assignment.candidate_id.is_not(None),
                Assignment.status == "done",
            )
        )
        total = s.scalar(select(func.count()).where(CurationCandidate.study_id == assignment.study_id))
        return {
            "candidate_id": cand.id,
            "source_path": str(self.images.path(cand.source_hash)),
            "target_path": str(self.images.path(cand.target_hash)),
            "instruction": cand.instruction,
            "language": cand.language,
            "filter_score": cand.filter_score,
            "filter_reason": cand.filter_reason,
            "category": cand.category,
            "progress": {"done": done or 0, "total": total or 0},
        }

    def next_candidate(self, study: StudyRef, rater_handle: str) -> dict[str, Any] | None:
        """The next triplet to review (an undecided one first), or None when the rater is done."""
        rng = self._rng_fork()

        def write(s: Session) -> dict[str, Any] | None:
            conn = s.connection()
            st, rater = self._study_record(s, study), rater_row(s, rater_handle)
            studies.check_open(st, "curation")
            scheduler.lock_rater(conn, rater.id)
            self._sweeper.sweep(conn, st.id, st.lease_seconds)
            assignment = s.scalars(
                select(Assignment)
                .where(
                    Assignment.rater_id == rater.id,
                    Assignment.study_id == st.id,
                    Assignment.candidate_id.is_not(None),
                    Assignment.status == "open",
                )
                .order_by(Assignment.id)
                .limit(1)
            ).first()
            if assignment is not None:  # the same claim again (reload, second tab): its lease starts over
                assignment.active_at = utcnow()
            else:
                if not studies.may_open_screen(conn, st, rater.id):
                    return None
                cand_id = leases.claim_or_sweep(
                    conn, st.id, st.lease_seconds, lambda: scheduler.claim_candidate(conn, st, rater.id, rng)
                )
                if cand_id is None:
                    return None
                assignment = Assignment(
                    study_id=st.id, rater_id=rater.id, candidate_id=cand_id, status="open"
                )
                s.add(assignment)
                s.flush()
            return self._candidate_view(s, assignment)

        return self.db.run_write(write)

    def submit_decision(
        self,
        candidate_id: int,
        rater_handle: str,
        decision: str,
        reasons: Iterable[str] = (),
        note: str = "",
        idempotency_key: str = "",
        replace: bool = False,
    ) -> dict[str, Any]:
        """Store accept/reject/flag with reasons from the study's taxonomy; same key -> ``stored: False``.

        ``outcome`` as for votes: "stored", "duplicate", "same" or "conflict" (the claim already holds a different
        decision, ``previous``, e.g. from another tab; repeat with ``replace=True`` to supersede it). A decision
        on a lapsed claim is kept; ``extra`` when its slot was taken meanwhile.
        """
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
        reason_list = list(reasons or [])
        note = check_text(note or "", "note", required=False)

        def write(s: Session) -> dict[str, Any]:
            rater = rater_row(s, rater_handle)
            existing = by_key(s, Decision, idempotency_key)
            if existing is not None:
                if existing.candidate_id != candidate_id or existing.rater_id != rater.id:
                    raise ValueError(
                        f"idempotency key {idempotency_key!r} was already used for another decision"
                    )
                return {"decision_id": existing.id, "stored": False, "outcome": "duplicate"}
            cand = s.get(CurationCandidate, candidate_id)
            if cand is None:
                raise LookupError(f"unknown candidate {candidate_id!r}")
            allowed = s.get(Study, cand.study_id).reasons
            unknown = [r for r in reason_list if r not in allowed]
            if unknown:
                raise ValueError(f"reason(s) {unknown} are not in the study's taxonomy {allowed}")
            assignment = s.scalars(
                select(Assignment).where(
                    Assignment.rater_id == rater.id, Assignment.candidate_id == candidate_id
                )
            ).first()
            if assignment is None:
                raise PermissionError(f"candidate {candidate_id} was not given to rater {rater_handle!r}")
            if assignment.status == "skipped":
                raise ValueError(f"candidate {candidate_id} was skipped; it cannot take a decision")
            previous = latest(s, Decision, Decision.assignment_id, assignment.id)
            if previous is not None and not replace:
                earlier = answered_before(previous.decision, decision)
                if earlier is not None:
                    return {"decision_id": previous.id, **earlier}
            row = Decision(
                assignment_id=assignment.id,
                candidate_id=candidate_id,
                rater_id=rater.id,
                decision=decision,
                reasons=reason_list,
                note=note or "",
                idempotency_key=idempotency_key,
                supersedes_id=previous.id if previous else None,
            )
            s.add(row)
            s.flush()
            extra = leases.settle(s.connection(), assignment.id)
            return {"decision_id": row.id, "stored": True, "outcome": "stored", "extra": extra}

        return self.db.run_write(write)

    def undo_decision(self, study: StudyRef, rater_handle: str) -> dict[str, Any] | None:
        """Withdraw the rater's latest standing decision; returns the candidate to show again (``previous``: the
        withdrawn decision, reasons and note), or None."""

        def write(s: Session) -> dict[str, Any] | None:
            st, rater = study_row(s, study), rater_row(s, rater_handle)
            last = last_standing(
                s, Decision, Decision.decision, Assignment, Decision.assignment_id, st.id, rater.id
            )
            if last is None:
                return None
            s.add(
                Decision(
                    assignment_id=last.assignment_id,
                    candidate_id=last.candidate_id,
                    rater_id=rater.id,
                    decision=RETRACT,
                    reasons=[],
                    idempotency_key=f"undo-{uuid.uuid4()}",
                    supersedes_id=last.id,
                )
            )
            assignment = s.get(Assignment, last.assignment_id)
            assignment.status, assignment.active_at = "open", utcnow()  # on screen again: a fresh lease
            s.flush()
            previous = {"decision": last.decision, "reasons": list(last.reasons or []), "note": last.note}
            return {**self._candidate_view(s, assignment), "previous": previous}

        return self.db.run_write(write)
