"""Who may curate and administer: a password from the environment, or (on a Space) a Hugging Face login."""

from __future__ import annotations

import hmac
from typing import Any

import gradio as gr


def org_names(profile: gr.OAuthProfile | None) -> set[str]:
    """Organisations listed in the HF OAuth userinfo (the `orgs` claim)."""
    if profile is None:
        return set()
    orgs: list[dict[str, Any]] = profile.get("orgs") or []
    return {str(o.get("preferred_username") or o.get("name")) for o in orgs if isinstance(o, dict)}


def password_ok(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; no configured password means nobody gets in by password."""
    return bool(expected) and bool(given) and hmac.compare_digest(expected.encode(), given.encode())


def is_admin(ctx: Any, password: str | None, profile: gr.OAuthProfile | None) -> bool:
    """Admin/curator rights: the admin password, or an HF login that is in the admin org or has role admin."""
    settings = ctx.settings
    if password_ok(settings.admin_password, password):
        return True
    if profile is None:
        return False
    if settings.admin_org and settings.admin_org in org_names(profile):
        return True
    username = str(profile.username)
    return any(r["handle"] == username and r["role"] == "admin" for r in ctx.workbench.list_raters())
