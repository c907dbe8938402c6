"""A recruiting platform's ids for a rater's visit to a study: Prolific's STUDY_ID and SESSION_ID.

The rater link of a Prolific study carries them (``?PROLIFIC_PID=...&STUDY_ID=...&SESSION_ID=...``); stored with
the study and the rater, they let a researcher match the answers to the platform's submissions when approving or
paying. A visit is stored once however often the page is reloaded.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from db.models import Rater, RaterSession, utcnow

SESSIONS, RATERS = RaterSession.__table__, Rater.__table__
PLATFORMS = ("prolific",)
# Platform ids are short tokens (Prolific: 24 hex digits); an unfilled "{{%SESSION_ID%}}" placeholder is refused.
_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def check_ids(platform: str, external_study: str, session: str) -> tuple[str, str, str]:
    """The ids, checked: a known platform and two tokens of 1-100 letters, digits, '.', '-' or '_'."""
    if platform not in PLATFORMS:
        raise ValueError(f"platform must be one of {PLATFORMS}, got {platform!r}")
    for value, what in ((external_study, "study id"), (session, "session id")):
        if not isinstance(value, str) or not _ID.fullmatch(value):
            raise ValueError(f"the {platform} {what} must be 1-100 letters, digits, '.', '-' or '_'")
    return platform, external_study, session


def record(
    conn: Connection, study_id: int, rater_id: int, platform: str, external_study: str, session: str
) -> bool:
    """Store the visit unless it is stored already; True when it is new (check-then-insert: retry-safe)."""
    same = select(SESSIONS.c.id).where(
        SESSIONS.c.study_id == study_id,
        SESSIONS.c.rater_id == rater_id,
        SESSIONS.c.platform == platform,
        SESSIONS.c.session == session,
    )
    if conn.execute(same).first() is not None:
        return False
    conn.execute(
        insert(SESSIONS).values(
            study_id=study_id, rater_id=rater_id, platform=platform, external_study=external_study,
            session=session, created_at=utcnow(),
        )
    )  # fmt: skip
    return True


def listing_query(study_id: int):  # a SELECT
    """The study's visits, oldest first: rater, platform, external_study, session, created_at."""
    return (
        select(
            RATERS.c.handle.label("rater"),
            SESSIONS.c.platform,
            SESSIONS.c.external_study,
            SESSIONS.c.session,
            SESSIONS.c.created_at,
        )
        .join(RATERS, RATERS.c.id == SESSIONS.c.rater_id)
        .where(SESSIONS.c.study_id == study_id)
        .order_by(SESSIONS.c.id)
    )


def listing(conn: Connection, study_id: int) -> list[dict[str, Any]]:
    """`listing_query`'s rows as dicts."""
    return [dict(row) for row in conn.execute(listing_query(study_id)).mappings()]
