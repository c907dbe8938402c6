"""Who may curate and administer: a password from the environment, or (on a Space) a Hugging Face login.

Password guessing is slowed per client address and per handle (workbench.ui.throttle.Backoff): after a few
wrong passwords each further one doubles a wait during which that client or handle is refused unchecked.
"""

from __future__ import annotations

import hmac
import math
from typing import Any

import gradio as gr

from workbench.ui.throttle import client_key


def org_names(profile: gr.OAuthProfile | None) -> set[str]:
    """Organisations listed in the HF OAuth userinfo (the `orgs` claim)."""
    if profile is None:
        return set()
    orgs: list[dict[str, Any]] = profile.get("orgs") or []
    return {str(o.get("preferred_username") or o.get("name")) for o in orgs if isinstance(o, dict)}


def password_ok(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; no configured password means nobody gets in by password."""
    return bool(expected) and bool(given) and hmac.compare_digest(expected.encode(), given.encode())


def _password_ok_with_backoff(ctx: Any, given: str | None, handle: str | None) -> bool:
    """Check the admin password unless this client or handle is waiting out a backoff (then gr.Error)."""
    keys = [client_key()] + ([f"handle:{handle}"] if handle else [])
    backoff = ctx.limits.logins
    wait = backoff.wait_s(keys)
    if wait > 0:
        raise gr.Error(f"Too many wrong passwords: try again in {math.ceil(wait)} s.")
    if password_ok(ctx.settings.admin_password, given):
        backoff.succeeded(keys)
        return True
    if given:  # an empty field is not a guess
        backoff.failed(keys)
    return False


def is_admin(
    ctx: Any, password: str | None, profile: gr.OAuthProfile | None, handle: str | None = None
) -> bool:
    """Admin/curator rights: the admin password, or an HF login that is in the admin org or has role admin."""
    settings = ctx.settings
    if profile is None:
        return _password_ok_with_backoff(ctx, password, handle)
    if password and _password_ok_with_backoff(ctx, password, handle):
        return True
    if settings.admin_org and settings.admin_org in org_names(profile):
        return True
    username = str(profile.username)
    return any(r["handle"] == username and r["role"] == "admin" for r in ctx.workbench.list_raters())
