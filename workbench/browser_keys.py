"""A rater handle bound to the browser that first used it.

Without a login, a handle is just a typed name: anyone who types another rater's handle could undo their vote.
So the first browser that signs in with a handle presents a random secret (kept in that browser's storage); only
its sha256 is stored on the rater. Later actions under the handle must present the same secret, until an admin
resets the binding (e.g. the rater changed computers). Scripted clients that never present a secret leave a
handle unbound.
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import Rater


class HandleInUse(PermissionError):
    """The handle is bound to another browser."""


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _refusal(handle: str) -> HandleInUse:
    return HandleInUse(
        f"The handle {handle!r} is in use from another browser. Use your own handle, or ask an admin to "
        "reset this one if it is yours (e.g. on a new computer)."
    )


def check_or_bind(wb, handle: str, key: str | None) -> None:
    """Bind an unbound ``handle`` to ``key``; refuse (HandleInUse) a bound handle presented with another key.

    ``key=None`` (a client without browser storage) passes only while the handle is unbound. An unknown handle
    passes (it has no binding; the rating action refuses it with its own message).
    """

    def write(s: Session) -> None:
        row = s.execute(select(Rater.id, Rater.browser_key_hash).where(Rater.handle == handle)).first()
        if row is None:
            return  # nothing to protect; the action itself reports the unknown rater
        if row.browser_key_hash is None:
            if key:
                # Guarded: two browsers racing for a fresh handle cannot both win.
                bound = s.execute(
                    update(Rater)
                    .where(Rater.id == row.id, Rater.browser_key_hash.is_(None))
                    .values(browser_key_hash=_digest(key))
                ).rowcount
                if not bound:
                    raise _refusal(handle)
            return
        if not key or not hmac.compare_digest(row.browser_key_hash, _digest(key)):
            raise _refusal(handle)

    wb.db.run_write(write)


def reset(wb, handles: list[str]) -> int:
    """Unbind these handles (the next browser to use each one binds it again); returns how many were bound."""

    def write(s: Session) -> int:
        return s.execute(
            update(Rater)
            .where(Rater.handle.in_(handles), Rater.browser_key_hash.is_not(None))
            .values(browser_key_hash=None)
        ).rowcount

    return wb.db.run_write(write)
