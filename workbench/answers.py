"""Checks and lookups shared by the rating and curation halves of the facade (append-only answer chains)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import RETRACT, SCORE_NAMES
from workbench.validate import check_text

__all__ = ["by_key", "check_new_key", "check_scores", "check_text", "last_standing", "latest"]


def latest(s: Session, model, parent_column, parent_id: int):  # ORM class / column
    """The current row of an append-only chain (each new row supersedes the latest, so it has the highest id)."""
    return s.scalars(
        select(model).where(parent_column == parent_id).order_by(model.id.desc()).limit(1)
    ).first()


def by_key(s: Session, model, key: str):
    """The row holding idempotency ``key`` (None if new); refuses a missing key."""
    if not key or not isinstance(key, str):
        raise ValueError("an idempotency_key (non-empty string) is required")
    return s.scalars(select(model).where(model.idempotency_key == key)).first()


def check_scores(scores: Mapping[str, float] | None) -> dict[str, float | None]:
    """The three optional 0-10 scores (semantic, quality, overall), validated; missing ones are None."""
    scores = dict(scores or {})
    unknown = set(scores) - set(SCORE_NAMES)
    if unknown:
        raise ValueError(f"unknown score name(s) {sorted(unknown)}; allowed: {list(SCORE_NAMES)}")
    out: dict[str, float | None] = {}
    for name in SCORE_NAMES:
        value = scores.get(name)
        if value is not None and not (isinstance(value, int | float) and 0 <= value <= 10):
            raise ValueError(f"score {name!r} must be a number from 0 to 10, got {value!r}")
        out[name] = None if value is None else float(value)
    return out


def last_standing(s: Session, model, answer_column, parent, parent_fk, study_id: int, rater_id: int):
    """The rater's newest answer in the study that is neither withdrawn nor superseded (what "undo" withdraws).

    ``model`` is Vote or Decision, ``answer_column`` its choice/decision column, ``parent`` the table that carries
    the study (Impression or Assignment) and ``parent_fk`` the answer's column pointing at it.
    """
    superseded = select(model.supersedes_id).where(model.supersedes_id.is_not(None))
    return s.scalars(
        select(model)
        .join(parent, parent.id == parent_fk)
        .where(
            parent.study_id == study_id,
            model.rater_id == rater_id,
            answer_column != RETRACT,
            model.id.not_in(superseded),
        )
        .order_by(model.id.desc())
        .limit(1)
    ).first()


def check_new_key(s: Session, model, study, key: str | None, what: str) -> None:
    """Refuse an external key already used in the study (items and candidates are unique per study and key)."""
    if key is None:
        return
    taken = s.scalars(select(model.id).where(model.study_id == study.id, model.external_key == key)).first()
    if taken is not None:
        raise ValueError(f"duplicate {what} key {key!r} in study {study.name!r}")


def answered_before(previous: str | None, new: str) -> dict[str, Any] | None:
    """The outcome when a screen that already holds a standing answer gets another one without ``replace``:
    "same" (nothing to store) or "conflict" (answered differently, e.g. in another tab: ask before replacing).
    None when there is nothing standing (no answer yet, or it was undone)."""
    if previous is None or previous == RETRACT:
        return None
    return {"stored": False, "outcome": "same" if previous == new else "conflict", "previous": previous}
