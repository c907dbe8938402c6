"""SQLAlchemy 2.x models for the workbench.

Votes and curation decisions are append-only: an edit or an undo is a new row whose ``supersedes_id`` points at
the row it replaces, so the full history stays in the table and the "current" answer is the row nobody
supersedes. Impressions log what a rater actually saw (which output on which side), which is what makes
position-bias analysis possible. Images are referenced by their sha256 in the content-addressed store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names keep alembic batch migrations (SQLite table rebuilds) deterministic.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# "arena": live battles between contestant systems (workbench/arena/); its votes are ordinary votes.
STUDY_KINDS = ("preference", "curation", "arena")
ROLES = ("rater", "admin")
CHOICES = ("A", "B", "tie", "both_bad")
DECISIONS = ("accept", "reject", "flag")
# An undo is stored as a "retract" row that supersedes the answer it withdraws.
RETRACT = "retract"
SCORE_NAMES = ("semantic", "quality", "overall")
# A claim (assignment) and its screen (impression) lapse after the study's lease without activity: "expired".
ASSIGNMENT_STATUSES = ("open", "done", "skipped", "expired")
IMPRESSION_STATUSES = ("open", "voted", "skipped", "expired")
DEFAULT_LEASE_SECONDS = 30 * 60

# Default curation taxonomy; a study may configure its own.
DEFAULT_REASONS = (
    "instruction_not_followed",
    "over_edit_identity_change",
    "artifacts",
    "wrong_region",
    "text_rendering_error",
    "unsafe",
    "duplicate",
    "bad_source",
    "bad_instruction",
)

JSONType = JSON().with_variant(JSONB(), "postgresql")
SHA256 = String(64)


def utcnow() -> datetime:
    """Timezone-aware now; PostgreSQL stores timestamptz, SQLite ISO text."""
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Study(Base):
    __tablename__ = "studies"
    __table_args__ = (
        CheckConstraint(_in("kind", STUDY_KINDS), name="kind"),
        CheckConstraint("k >= 1", name="k_positive"),
        CheckConstraint("gold_rate >= 0 AND gold_rate <= 1", name="gold_rate_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    k: Mapped[int] = mapped_column(Integer, default=3)
    gold_rate: Mapped[float] = mapped_column(Float, default=0.0)
    guidelines: Mapped[str] = mapped_column(Text, default="")
    reasons: Mapped[list[str]] = mapped_column(JSONType)
    # "balanced" (coverage first) or "uncertain" (prefer the pair whose ranking is least certain).
    pair_mode: Mapped[str] = mapped_column(String(20), default="balanced")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Seconds without activity after which a rater's claim returns to the pool.
    lease_seconds: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_LEASE_SECONDS, server_default=str(DEFAULT_LEASE_SECONDS)
    )
    # Archived studies are hidden from raters and kept in results.
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Per-rater quota (answered screens) and what a rater gets once it is met (validated by the engine).
    quota: Mapped[int | None] = mapped_column(Integer)
    completion_code: Mapped[str | None] = mapped_column(String(100))
    redirect_url: Mapped[str | None] = mapped_column(Text)


class System(Base):
    """A model being compared. Its name is never sent to raters."""

    __tablename__ = "systems"
    __table_args__ = (UniqueConstraint("study_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("study_id", "external_key"),
        # The scheduler walks this index: least-covered items first, in a fixed random order.
        Index("ix_items_queue", "study_id", "is_gold", "assigned_count", "order_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    external_key: Mapped[str | None] = mapped_column(String(300))
    source_hash: Mapped[str] = mapped_column(SHA256)
    instruction: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(16), default="en")
    category: Mapped[str | None] = mapped_column(String(100))
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    # Raters holding an open or finished assignment; kept in the row so "reaches k" is one atomic UPDATE.
    assigned_count: Mapped[int] = mapped_column(Integer, default=0)
    order_key: Mapped[float] = mapped_column(Float)


class Output(Base):
    __tablename__ = "outputs"
    __table_args__ = (UniqueConstraint("item_id", "system_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    system_id: Mapped[int] = mapped_column(ForeignKey("systems.id", ondelete="CASCADE"), index=True)
    image_hash: Mapped[str] = mapped_column(SHA256)


class GoldItem(Base):
    """A gold (honeypot) item: the output that a careful rater must prefer, or None when both are bad."""

    __tablename__ = "gold_items"

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    good_output_id: Mapped[int | None] = mapped_column(ForeignKey("outputs.id"))
    expected_choice: Mapped[str | None] = mapped_column(String(20))


class Rater(Base):
    __tablename__ = "raters"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handle: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20), default="rater")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # sha256 of the secret of the browser that first used the handle (None: not bound; an admin can reset it)
    browser_key_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RaterSession(Base):
    """A recruiting platform's ids for a rater's visit to a study (Prolific's STUDY_ID and SESSION_ID), kept so
    answers can be matched to the platform's submissions when paying or reviewing."""

    __tablename__ = "rater_sessions"
    __table_args__ = (UniqueConstraint("study_id", "rater_id", "platform", "session"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), index=True)
    platform: Mapped[str] = mapped_column(String(20))
    external_study: Mapped[str] = mapped_column(String(100))
    session: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CurationCandidate(Base):
    __tablename__ = "curation_candidates"
    __table_args__ = (
        UniqueConstraint("study_id", "external_key"),
        Index("ix_candidates_queue", "study_id", "assigned_count", "order_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    external_key: Mapped[str | None] = mapped_column(String(1000))
    source_hash: Mapped[str] = mapped_column(SHA256)
    target_hash: Mapped[str] = mapped_column(SHA256)
    instruction: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(16), default="en")
    category: Mapped[str | None] = mapped_column(String(100))
    filter_score: Mapped[float | None] = mapped_column(Float)
    filter_reason: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType)
    assigned_count: Mapped[int] = mapped_column(Integer, default=0)
    order_key: Mapped[float] = mapped_column(Float)


class Assignment(Base):
    """A rater's claim on an item or a candidate; ``status`` open -> done, skipped (frees the slot) or expired
    (the lease lapsed: the slot went back to the pool; a late answer is still kept)."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("rater_id", "item_id"),
        UniqueConstraint("rater_id", "candidate_id"),
        CheckConstraint("(item_id IS NULL) <> (candidate_id IS NULL)", name="one_target"),
        CheckConstraint(_in("status", ASSIGNMENT_STATUSES), name="status"),
        # The lease sweep looks for open claims of a study idle since before a cutoff.
        Index("ix_assignments_lease", "study_id", "status", "active_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    candidate_id: Mapped[int | None] = mapped_column(
        ForeignKey("curation_candidates.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(10), default="open")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Last activity on the claim (shown, re-shown, answered, undone): the lease runs from here.
    active_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # A late answer on an expired claim whose slot another rater took: kept as a rating beyond k.
    extra: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class PairCount(Base):
    """Running count of impressions per system pair (lo < hi) and how often ``lo`` was on the left."""

    __tablename__ = "pair_counts"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    system_lo: Mapped[int] = mapped_column(ForeignKey("systems.id"), primary_key=True)
    system_hi: Mapped[int] = mapped_column(ForeignKey("systems.id"), primary_key=True)
    shown: Mapped[int] = mapped_column(Integer, default=0)
    lo_left: Mapped[int] = mapped_column(Integer, default=0)


class Impression(Base):
    """One screen shown to a rater: which output was on the left and which on the right."""

    __tablename__ = "impressions"
    __table_args__ = (
        CheckConstraint(_in("status", IMPRESSION_STATUSES), name="status"),
        Index("ix_impressions_rater_status", "rater_id", "study_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    left_output_id: Mapped[int] = mapped_column(ForeignKey("outputs.id"))
    right_output_id: Mapped[int] = mapped_column(ForeignKey("outputs.id"))
    status: Mapped[str] = mapped_column(String(10), default="open")
    shown_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Vote(Base):
    """Append-only. ``choice`` A = left output, B = right output (as logged on the impression)."""

    __tablename__ = "votes"
    __table_args__ = (
        CheckConstraint(_in("choice", (*CHOICES, RETRACT)), name="choice"),
        *(
            CheckConstraint(f"{name} IS NULL OR ({name} >= 0 AND {name} <= 10)", name=f"{name}_range")
            for name in SCORE_NAMES
        ),
        # One root answer per impression; later answers must supersede it (no silent double votes).
        Index(
            "uq_votes_root_per_impression",
            "impression_id",
            unique=True,
            sqlite_where=text("supersedes_id IS NULL"),
            postgresql_where=text("supersedes_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    impression_id: Mapped[int] = mapped_column(ForeignKey("impressions.id", ondelete="CASCADE"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), index=True)
    choice: Mapped[str] = mapped_column(String(10))
    semantic: Mapped[float | None] = mapped_column(Float)
    quality: Mapped[float | None] = mapped_column(Float)
    overall: Mapped[float | None] = mapped_column(Float)
    comment: Mapped[str] = mapped_column(Text, default="")
    seconds_on_task: Mapped[float | None] = mapped_column(Float)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("votes.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Decision(Base):
    """Append-only curation decision; ``reasons`` come from the study's taxonomy."""

    __tablename__ = "decisions"
    __table_args__ = (
        CheckConstraint(_in("decision", (*DECISIONS, RETRACT)), name="decision"),
        Index(
            "uq_decisions_root_per_assignment",
            "assignment_id",
            unique=True,
            sqlite_where=text("supersedes_id IS NULL"),
            postgresql_where=text("supersedes_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), index=True)
    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("curation_candidates.id", ondelete="CASCADE"), index=True
    )
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), index=True)
    decision: Mapped[str] = mapped_column(String(10))
    reasons: Mapped[list[str]] = mapped_column(JSONType)
    note: Mapped[str] = mapped_column(Text, default="")
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ImportedBattle(Base):
    """A vote brought in from FastChat/GenAI-Arena battle logs (no impression exists for it here)."""

    __tablename__ = "imported_battles"
    __table_args__ = (
        UniqueConstraint("study_id", "battle_key"),
        CheckConstraint(_in("winner", ("model_a", "model_b", "tie", "tie (bothbad)")), name="winner"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    system_a_id: Mapped[int] = mapped_column(ForeignKey("systems.id"))
    system_b_id: Mapped[int] = mapped_column(ForeignKey("systems.id"))
    winner: Mapped[str] = mapped_column(String(20))
    judge: Mapped[str | None] = mapped_column(String(200))
    question_id: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(16))
    # FastChat's ``tstamp`` and ``anony``, kept so an exported log re-imports and re-exports unchanged.
    tstamp: Mapped[float | None] = mapped_column(Float)
    anony: Mapped[bool | None] = mapped_column(Boolean)
    # sha256 of the canonical record (of the file and position, for id-less logs): a battle is imported once.
    battle_key: Mapped[str] = mapped_column(SHA256)
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


CONTESTANT_KINDS = ("local", "remote")
BATTLE_STATUSES = ("ready", "failed")
MODERATION = ("pending", "approved", "flagged")


class ArenaContestant(Base):
    """How an arena study runs one of its systems: a local model or a remote Gradio app (``config`` JSON)."""

    __tablename__ = "arena_contestants"
    __table_args__ = (CheckConstraint(_in("kind", CONTESTANT_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    system_id: Mapped[int] = mapped_column(ForeignKey("systems.id", ondelete="CASCADE"), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    timeout_s: Mapped[float] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ArenaBattle(Base):
    """One arena round: the pair and its sides, each side's latency and error, the prompt's moderation state.

    A battle whose two outputs arrived is an item (source + instruction), two outputs and an impression of the
    arena study, so its vote is an ordinary append-only vote; a failed battle has no item and takes no vote.
    ``token`` is the unguessable id handed to the visitor (it authorises the vote).
    """

    __tablename__ = "arena_battles"
    __table_args__ = (
        CheckConstraint(_in("status", BATTLE_STATUSES), name="status"),
        CheckConstraint(_in("moderation", MODERATION), name="moderation"),
        Index("ix_arena_battles_visitor", "study_id", "visitor", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    visitor: Mapped[str] = mapped_column(String(64))
    left_system_id: Mapped[int] = mapped_column(ForeignKey("systems.id"))
    right_system_id: Mapped[int] = mapped_column(ForeignKey("systems.id"))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    impression_id: Mapped[int | None] = mapped_column(
        ForeignKey("impressions.id", ondelete="CASCADE"), unique=True
    )
    source_hash: Mapped[str] = mapped_column(SHA256)
    instruction: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(16))
    left_seconds: Mapped[float | None] = mapped_column(Float)
    right_seconds: Mapped[float | None] = mapped_column(Float)
    left_error: Mapped[str | None] = mapped_column(Text)
    right_error: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10))
    moderation: Mapped[str] = mapped_column(String(10), default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEntry(Base):
    """One change to a study (created, imported into, edited, archived, claims released, deleted).

    No foreign key: the log outlives a deleted study; ``study_name`` is the name at the time of the change.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int | None] = mapped_column(Integer, index=True)
    study_name: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
