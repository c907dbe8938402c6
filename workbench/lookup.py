"""Finding a study or a rater row inside a caller's transaction (shared by every half of the facade)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Rater, Study

StudyRef = int | str


def study_row(s: Session, study: StudyRef) -> Study:
    """The study by id or name; ``LookupError`` when there is none."""
    row = (
        s.get(Study, study)
        if isinstance(study, int)
        else s.scalars(select(Study).where(Study.name == study)).first()
    )
    if row is None:
        raise LookupError(f"unknown study {study!r}")
    return row


def rater_row(s: Session, handle: str) -> Rater:
    """The rater by handle; ``LookupError`` (saying how to add one) when there is none."""
    row = s.scalars(select(Rater).where(Rater.handle == handle)).first()
    if row is None:
        raise LookupError(f"unknown rater {handle!r} (add it with `python -m workbench raters add {handle}`)")
    return row
