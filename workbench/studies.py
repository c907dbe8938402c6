"""Study settings and their management: validation, create, edit, archive, delete, and the audit log.

Every change runs in the caller's write transaction together with its ``audit_log`` row, so a change and its
record commit or roll back together. Settings are read per request (``record``): several replicas may serve one
database, and an edit (a raised k, an archive) takes effect on the next screen everywhere.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from db.models import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_REASONS,
    STUDY_KINDS,
    Assignment,
    AuditEntry,
    CurationCandidate,
    Decision,
    Item,
    Study,
    utcnow,
)
from workbench.answers import check_text
from workbench.lookup import StudyRef, study_row
from workbench.scheduler import StudyRecord

PAIR_MODES = ("balanced", "uncertain")
MAX_LEASE_SECONDS = 7 * 24 * 3600
CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
# What an admin may change after creation (kind, gold rate and pair mode shape the data already collected).
EDITABLE = ("name", "guidelines", "reasons", "k", "lease_seconds", "quota", "completion_code", "redirect_url")

STUDIES = Study.__table__
_RECORD_COLUMNS = (
    STUDIES.c.id, STUDIES.c.name, STUDIES.c.kind, STUDIES.c.k, STUDIES.c.gold_rate, STUDIES.c.pair_mode,
    STUDIES.c.lease_seconds, STUDIES.c.quota, STUDIES.c.archived_at,
)  # fmt: skip
_RECORD_BY_ID = select(*_RECORD_COLUMNS).where(STUDIES.c.id == bindparam("ref"))
_RECORD_BY_NAME = select(*_RECORD_COLUMNS).where(STUDIES.c.name == bindparam("ref"))


_DONE_ANSWERS = select(func.count()).where(
    Assignment.__table__.c.rater_id == bindparam("rater_id"),
    Assignment.__table__.c.study_id == bindparam("study_id"),
    Assignment.__table__.c.status == "done",
)


def answers_done(conn: Connection, study_id: int, rater_id: int) -> int:
    """Screens (claims) the rater has answered in the study: what the per-rater quota counts."""
    return conn.scalar(_DONE_ANSWERS, {"rater_id": rater_id, "study_id": study_id}) or 0


def check_open(study: StudyRecord, kind: str) -> None:
    """Refuse to hand out screens of an archived study (hidden from raters) or of the other kind."""
    if study.archived:
        raise ValueError(f"study {study.name!r} is archived: it takes no new answers")
    if study.kind != kind:
        use = "next_candidate" if study.kind == "curation" else "next_item"
        raise ValueError(f"study {study.name!r} is a {study.kind} study; use {use}")


def may_open_screen(conn: Connection, study: StudyRecord, rater_id: int) -> bool:
    """Whether the rater may get a new screen: not once their quota is met."""
    return study.quota is None or answers_done(conn, study.id, rater_id) < study.quota


def record(conn: Connection, study: StudyRef) -> StudyRecord:
    """The scheduler's view of a study (prebuilt statement: this runs on every screen)."""
    row = conn.execute(_RECORD_BY_ID if isinstance(study, int) else _RECORD_BY_NAME, {"ref": study}).first()
    if row is None:
        raise LookupError(f"unknown study {study!r}")
    return StudyRecord(row.id, row.name, row.kind, row.k, row.gold_rate, row.pair_mode, row.lease_seconds,
                       row.quota, row.archived_at is not None)  # fmt: skip


class RecordCache:
    """``record`` remembered for a second per process: a screen needs the settings, and reading them each time
    cost a third of ``next_item``'s CPU. Edits made here clear it at once; other replicas see them within
    ``ttl_s``."""

    def __init__(self, ttl_s: float = 1.0) -> None:
        self.ttl_s = ttl_s
        self._rows: dict[StudyRef, tuple[float, StudyRecord]] = {}

    def get(self, s: Session, study: StudyRef) -> StudyRecord:
        hit = self._rows.get(study)
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]  # no connection touched: a read transaction may not even begin
        fresh = record(s.connection(), study)
        self._rows[study] = (time.monotonic(), fresh)
        return fresh

    def clear(self) -> None:
        self._rows.clear()


# ---------------------------------------------------------------------- validation
def check_name(name: object) -> str:
    name = check_text(name if isinstance(name, str) else "", "a study name").strip()
    if len(name) > 200:
        raise ValueError("a study name is at most 200 characters")
    return name


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return k


def check_reasons(reasons: Iterable[str] | None) -> list[str]:
    reason_list = list(DEFAULT_REASONS if reasons is None else reasons)
    if len(set(reason_list)) != len(reason_list) or not all(isinstance(r, str) and r for r in reason_list):
        raise ValueError("reasons must be distinct non-empty strings")
    return reason_list


def check_lease(seconds: object) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_LEASE_SECONDS:
        raise ValueError(
            f"the lease must be a whole number of seconds from 1 to {MAX_LEASE_SECONDS}, got {seconds!r}"
        )
    return seconds


def check_quota(quota: object) -> int | None:
    if quota is None:
        return None
    if isinstance(quota, bool) or not isinstance(quota, int) or quota < 1:
        raise ValueError(f"the quota must be a positive whole number of answers (or none), got {quota!r}")
    return quota


def check_completion_code(code: object) -> str | None:
    if code is None or code == "":
        return None
    if not isinstance(code, str) or not CODE_RE.match(code):
        raise ValueError("a completion code is 1-100 letters, digits, '-' or '_'")
    return code


def check_redirect_url(url: object) -> str | None:
    """An absolute http(s) URL (never ``javascript:`` or a relative path): raters are sent there when done."""
    if url is None or url == "":
        return None
    if not isinstance(url, str) or len(url) > 2000 or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError("a redirect URL is one http(s) address of at most 2000 characters, without spaces")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"a redirect URL must start with http:// or https:// and name a host, got {url!r:.60}"
        )
    return url


@dataclass(frozen=True)
class StudySpec:
    """Every setting of a new study, validated on construction."""

    name: str
    kind: str = "preference"
    k: int = 3
    gold_rate: float = 0.0
    guidelines: str = ""
    reasons: list[str] | None = field(default=None)
    pair_mode: str = "balanced"
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    quota: int | None = None
    completion_code: str | None = None
    redirect_url: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in STUDY_KINDS:
            raise ValueError(f"kind must be one of {STUDY_KINDS}, got {self.kind!r}")
        if (
            isinstance(self.gold_rate, bool)
            or not isinstance(self.gold_rate, int | float)
            or not 0 <= self.gold_rate <= 1
        ):
            raise ValueError(f"gold_rate must be within [0, 1], got {self.gold_rate!r}")
        if self.pair_mode not in PAIR_MODES:
            raise ValueError(f"pair_mode must be 'balanced' or 'uncertain', got {self.pair_mode!r}")
        check_text(self.guidelines or "", "guidelines", required=False)
        checked = {
            "name": check_name(self.name), "k": check_k(self.k), "reasons": check_reasons(self.reasons),
            "lease_seconds": check_lease(self.lease_seconds), "quota": check_quota(self.quota),
            "completion_code": check_completion_code(self.completion_code),
            "redirect_url": check_redirect_url(self.redirect_url), "gold_rate": float(self.gold_rate),
        }  # fmt: skip
        for name, value in checked.items():
            object.__setattr__(self, name, value)


# ---------------------------------------------------------------------- audit
def audit(s: Session, study: Study | None, actor: str, action: str, details: Mapping[str, Any]) -> None:
    """Record one change in the caller's transaction."""
    s.add(AuditEntry(study_id=study.id if study else None, study_name=study.name if study else "",
                     actor=(actor or "unknown")[:100], action=action, details=dict(details)))  # fmt: skip


def audit_rows(s: Session, study_id: int | None = None) -> list[dict[str, Any]]:
    """The log, newest first (one study's entries when ``study_id`` is given)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if study_id is not None:
        query = query.where(AuditEntry.study_id == study_id)
    return [
        {"at": e.created_at.isoformat(), "study": e.study_name, "actor": e.actor, "action": e.action,
         "details": e.details}
        for e in s.scalars(query)
    ]  # fmt: skip


# ---------------------------------------------------------------------- changes
def insert_study(s: Session, spec: StudySpec, actor: str) -> Study:
    """Create the study row (and its audit entry) in the caller's transaction."""
    if s.scalars(select(Study.id).where(Study.name == spec.name)).first() is not None:
        raise ValueError(f"a study named {spec.name!r} already exists")
    row = Study(**asdict(spec))
    s.add(row)
    s.flush()
    audit(s, row, actor, "create", {k: v for k, v in asdict(spec).items() if k != "guidelines"})
    return row


def _checked_change(name: str, value: Any) -> Any:
    checks = {"name": check_name, "k": check_k, "reasons": check_reasons, "lease_seconds": check_lease,
              "quota": check_quota, "completion_code": check_completion_code, "redirect_url": check_redirect_url,
              "guidelines": lambda v: check_text(v, "guidelines", required=False)}  # fmt: skip
    return checks[name](value)


def _reasons_in_use(s: Session, study_id: int) -> set[str]:
    rows = s.scalars(
        select(Decision.reasons).join(CurationCandidate, CurationCandidate.id == Decision.candidate_id)
        .where(CurationCandidate.study_id == study_id)
    )  # fmt: skip
    return {reason for reasons in rows for reason in (reasons or [])}


def _reopened(s: Session, study: Study, old_k: int) -> int:
    """Items (candidates) that were full under the old k and now take more raters."""
    table = Item if study.kind == "preference" else CurationCandidate
    query = select(func.count()).where(table.study_id == study.id, table.assigned_count >= old_k)
    if table is Item:
        query = query.where(Item.is_gold.is_(False))
    return s.scalar(query) or 0


def update_study(s: Session, study: StudyRef, actor: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Apply validated edits; returns ``{setting: [old, new]}`` for what changed.

    k may only rise: the scheduler then re-plans by itself (its queue takes every item with fewer than k raters,
    least covered first, so items that were complete come back). Lowering k would turn collected answers into
    ratings beyond k, so it is refused. A curation reason that decisions already use cannot be removed.
    """
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValueError(f"cannot change {sorted(unknown)}; editable settings: {', '.join(EDITABLE)}")
    row = study_row(s, study)
    diff: dict[str, Any] = {}
    for name, value in changes.items():
        new, old = _checked_change(name, value), getattr(row, name)
        if new != old:
            diff[name] = [old, new]
    if "k" in diff and diff["k"][1] < diff["k"][0]:
        raise ValueError(f"k can only be raised (it is {row.k}): lowering it would leave answers beyond k")
    if (
        "name" in diff
        and s.scalars(select(Study.id).where(Study.name == diff["name"][1])).first() is not None
    ):
        raise ValueError(f"a study named {diff['name'][1]!r} already exists")
    if "reasons" in diff:
        dropped = (set(diff["reasons"][0]) - set(diff["reasons"][1])) & _reasons_in_use(s, row.id)
        if dropped:
            raise ValueError(f"reason(s) {sorted(dropped)} are used by decisions already; keep them")
    if not diff:
        return {}
    details = {k: (["…", "…"] if k == "guidelines" else v) for k, v in diff.items()}
    if "k" in diff:
        details["reopened"] = _reopened(s, row, diff["k"][0])
    for name, (_, new) in diff.items():
        setattr(row, name, new)
    s.flush()
    audit(s, row, actor, "edit", details)
    return diff


def set_archived(s: Session, study: StudyRef, actor: str, archived: bool) -> bool:
    """Archive (hide from raters; results and exports keep it) or bring back; returns whether it changed."""
    row = study_row(s, study)
    if (row.archived_at is not None) == archived:
        return False
    row.archived_at = utcnow() if archived else None
    audit(s, row, actor, "archive" if archived else "unarchive", {})
    return True


def delete_rows(s: Session, study: StudyRef, actor: str, confirm: str, exported_to: str) -> dict[str, Any]:
    """Delete the study and everything in it (the database cascades); the audit entry stays."""
    row = study_row(s, study)
    if confirm != row.name:
        raise ValueError(f"type the study's name ({row.name!r}) to confirm deleting it")
    table = Item if row.kind == "preference" else CurationCandidate
    count = s.scalar(select(func.count()).where(table.study_id == row.id)) or 0
    audit(s, row, actor, "delete", {"rows": count, "exported_to": exported_to})
    s.execute(delete(Study).where(Study.id == row.id))
    return {"study": row.name, "deleted_rows": count, "exported_to": exported_to}
